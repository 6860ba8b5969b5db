package demo

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// temporaryPlacement reports whether an SSDA903 placement code is one of the
// temporary ones (T0 to T4), which the placement measures do not count.
func temporaryPlacement(place string) bool {
	return len(place) == 2 && place[0] == 'T' && place[1] >= '0' && place[1] <= '4'
}

// placementFor draws a placement, its provider, and its Ofsted URN (for the
// settings that have one) for a child of the given age.
func placementFor(rng *rand.Rand, age int) (place, provider, urn string) {
	u := rng.Float64()
	switch {
	case age >= 16 && u < 0.35:
		place = "K3" // supported accommodation, 16 and over only
	case u < 0.12:
		place = pick(rng, "U1", "U2", "U3")
	case u < 0.80:
		place = pick(rng, "U4", "U5", "U6", "U6")
	case u < 0.92:
		place = "K2"
	case u < 0.96 && age >= 5:
		place = "S1"
	default:
		place = "P1"
	}
	switch {
	case place == "P1":
		provider = "PR0"
	default:
		provider = pick(rng, "PR1", "PR1", "PR1", "PR4", "PR4", "PR5", "PR2")
	}
	if place == "K2" || place == "K3" || place == "S1" || provider == "PR4" || provider == "PR5" {
		urn = fmt.Sprintf("SC%06d", 900000+rng.IntN(99999))
	}
	return place, provider, urn
}

func postcode(rng *rand.Rand) string {
	return fmt.Sprintf("QX%d %d%c%c", 1+rng.IntN(20), rng.IntN(10), 'A'+rune(rng.IntN(26)), 'A'+rune(rng.IntN(26)))
}

// periodOfCare draws the episodes of a looked-after case opened on opened
// and closed on closed (none: still open), as they stand on today. The
// whole period is drawn from the case's own stream before it is cut at
// today or closed, so a later reporting date adds to the story and never
// rewrites it.
func (in *returnsInput) periodOfCare(c retCase, child Child) []Episode {
	rng := recordRNG(in.seed, streamCLA, c.ID)
	opened, closed := dayOf(c.Opened), dateOrZero(c.Closed)
	dob := dayOf(child.DOB)
	// Care ends on the 18th birthday at the latest.
	if eighteen := dayOf(child.DOB.AddDate(18, 0, 0)); eighteen <= in.today && (closed == none || eighteen < closed) {
		closed = eighteen
	}
	end := in.today
	if closed != none && closed < end {
		end = closed
	}
	ageOn := func(d day) int { return int(float64(d-dob) / 365.25) }
	home := postcode(rng)

	ls := pick(rng, "C1", "C1", "C1", "C2", "V2", "V2", "V2", "E1", "L1", "L2", "J1")
	if ageOn(opened) < 1 {
		ls = pick(rng, "C1", "L2", "V2")
	}
	place, provider, urn := placementFor(rng, ageOn(opened))
	cur := Episode{Child: child.ID, Start: opened.time(), RNE: "S", LS: ls, CIN: pick(rng, "N1", "N1", "N1", "N2", "N4", "N5", "N6", "N8"),
		Place: place, Provider: provider, URN: urn, HomePostcode: home, Postcode: postcode(rng)}
	// Most children settle with a carer; some move again and again.
	settle := 1500.0
	if rng.Float64() < 0.22 {
		settle = 170
	}
	var eps []Episode
	d := opened
	for {
		// The next change: a legal status made final soon after an interim
		// one, otherwise a move of placement.
		var next day
		temporary := temporaryPlacement(cur.Place)
		legal := !temporary && (cur.LS == "C1" || cur.LS == "L1" || cur.LS == "L2")
		if temporary {
			next = d + 2 + day(rng.IntN(9))
		} else if legal {
			next = d + 20 + day(rng.IntN(120))
		} else {
			next = d + 14 + day(rng.ExpFloat64()*settle)
		}
		if next >= end {
			break
		}
		n := cur
		n.Start = next.time()
		n.End, n.REC, n.ReasonPlaceChange = time.Time{}, "", ""
		switch {
		case temporary:
			// Back to the placement before the temporary one.
			prev := eps[len(eps)-1]
			n.RNE, n.Place, n.Provider, n.URN, n.Postcode = "P", prev.Place, prev.Provider, prev.URN, prev.Postcode
		case legal:
			n.RNE = "L"
			switch cur.LS {
			case "C1":
				n.LS = pick(rng, "C2", "C2", "E1")
			default:
				n.LS = pick(rng, "C1", "V2")
			}
		case rng.Float64() < 0.05:
			n.RNE, n.Place, n.Provider, n.URN = "P", pick(rng, "T1", "T2", "T3", "T4"), "", ""
		case rng.Float64() < 0.06:
			n.RNE = "T" // same carer, a new registration
			n.URN = fmt.Sprintf("SC%06d", 900000+rng.IntN(99999))
		default:
			n.RNE = "P"
			n.Place, n.Provider, n.URN = placementFor(rng, ageOn(next))
			n.Postcode = postcode(rng)
			if cur.LS == "E1" && ageOn(next) < 6 && rng.Float64() < 0.6 {
				n.Place, n.Provider, n.URN = pick(rng, "A5", "A6"), "PR1", ""
			}
		}
		if next <= d {
			break
		}
		cur.End, cur.REC = next.time(), "X1"
		if n.RNE == "P" && !temporaryPlacement(cur.Place) && !temporaryPlacement(n.Place) {
			cur.ReasonPlaceChange = pick(rng, "CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD", "LAREQ", "PLACE", "OTHER")
		}
		eps = append(eps, cur)
		cur, d = n, next
	}
	if closed != none && closed <= in.today {
		cur.End = closed.time()
		age := ageOn(closed)
		switch {
		case age >= 17:
			cur.REC = pick(rng, "E17", "E5", "E6", "E4A", "E8")
		case cur.Place == "A5" || cur.Place == "A6":
			cur.REC = pick(rng, "E11", "E12")
		default:
			cur.REC = pick(rng, "E4A", "E4A", "E4B", "E13", "E41", "E45", "E46", "E8")
		}
		if cur.REC != "E11" && cur.REC != "E12" && !temporaryPlacement(cur.Place) {
			cur.ReasonPlaceChange = pick(rng, "CARPL", "CHILD", "OTHER")
		}
	}
	return append(eps, cur)
}

// looked builds the SSDA903 return and Annex A lists 8 to 11.
func (in *returnsInput) looked(r *Returns) {
	today := in.today
	yearEnd := CollectionYearEnd(today.time())
	ys := dayOf(yearEnd.AddDate(-1, 0, 1))
	r.SSDA903.YearStart, r.SSDA903.YearEnd = ys.time(), yearEnd
	from := dayOf(AnnexAFrom(today.time()))
	f := &r.SSDA903
	adopters := 0
	for _, c := range in.cases {
		if c.Kind != caseCLA {
			continue
		}
		opened := dayOf(c.Opened)
		if opened > today {
			continue
		}
		id := fmt.Sprintf("DEMO-C%07d", c.ID)
		child := in.claChild(r, id, c, opened)
		eps := in.periodOfCare(c, child)
		last := eps[len(eps)-1]
		lastEnd := dayOf(last.End)
		if last.End.IsZero() {
			lastEnd = none
		}
		inYear := lastEnd == none || lastEnd >= ys
		rng := recordRNG(in.seed, streamCLA, -c.ID)
		dob := dayOf(child.DOB)
		ageOn := func(d day) int { return int(float64(d-dob) / 365.25) }

		if inYear {
			f.Episodes = append(f.Episodes, eps...)
			h := Header903{Child: id, Sex: child.Sex, DOB: child.DOB, Ethnic: child.Ethnicity, UPN: child.UPN, Mother: ""}
			if child.Sex == "F" && ageOn(today) >= 12 {
				h.Mother = "0"
				if rng.Float64() < 0.03 {
					h.Mother = "1"
					h.MotherDOB = (today - day(rng.IntN(300))).time()
				}
			}
			f.Header = append(f.Header, h)
			in.otherFiles(r, rng, child, eps, ys)
		}
		// Annex A List 8: looked after now, or ceased in the last six months.
		if lastEnd == none || lastEnd >= from {
			la := LookedAfter{Child: id, Started: opened.time(), LegalStatus: last.LS, Ceased: last.End, Reason: last.REC, Team: c.Team}
			yearAgo := dayOf(today.time().AddDate(-1, 0, 0))
			for i, e := range eps {
				if newCarer(eps, i) {
					la.PlacementStart, la.Placement = e.Start, e.Place
					if ed := dayOf(e.End); e.End.IsZero() || ed >= yearAgo {
						la.Placements12m++
					}
				}
			}
			r.Looked = append(r.Looked, la)
		}
		// Adoption (List 10) for children placed for adoption; their
		// adopters (List 11).
		for _, e := range eps {
			if e.Place != "A5" && e.Place != "A6" {
				continue
			}
			ad := Adoption{Child: id, EnteredCare: opened.time(), Decision: e.Start.AddDate(0, -4, 0), Placed: e.Start}
			if last.REC == "E11" || last.REC == "E12" {
				ad.AdoptionDone = last.End
			}
			if dayOf(ad.Placed) >= dayOf(today.time().AddDate(-1, 0, 0)) || (!ad.AdoptionDone.IsZero() && dayOf(ad.AdoptionDone) >= from) {
				r.Adoptions = append(r.Adoptions, ad)
				adopters++
				arng := recordRNG(in.seed, streamAdopter, c.ID)
				r.Adopters = append(r.Adopters, Adopter{ID: fmt.Sprintf("DEMO-F%07d", c.ID),
					Enquiry: e.Start.AddDate(0, -10-arng.IntN(8), 0), Approved: e.Start.AddDate(0, -3-arng.IntN(3), 0)})
			}
			break
		}
	}
}

// claChild is the looked-after child of case c, born by the start of care
// and under 18 a year after it or after the demo's set-up, whichever is
// later. The date of birth depends on nothing that changes as the demo
// moves on.
func (in *returnsInput) claChild(r *Returns, id string, c retCase, opened day) Child {
	child := in.newChild(r, id, c.ID, opened, 0, 17)
	rng := recordRNG(in.seed, streamChild, -c.ID)
	anchor := max(opened, in.setUp) + 365
	earliest, latest := dayOf(anchor.time().AddDate(-18, 0, 1)), opened
	dob := dayOf(child.DOB)
	if rng.Float64() < 0.3 {
		// Many children come into care as teenagers.
		dob = latest - day(13*365+rng.IntN(4*365))
	}
	if dob < earliest || dob > latest {
		dob = earliest + day(rng.IntN(max(int(latest-earliest), 1)))
	}
	child.DOB = min(dob, latest).time()
	r.Children[id] = child
	return child
}

// newCarer reports whether episode i of a child's period starts a spell
// with a new carer: a new period, or a change of carer (RNE P or B) that
// is neither a temporary placement nor the return from one.
func newCarer(eps []Episode, i int) bool {
	e := eps[i]
	if e.RNE == "S" {
		return true
	}
	if e.RNE != "P" && e.RNE != "B" {
		return false
	}
	if temporaryPlacement(e.Place) {
		return false
	}
	return i == 0 || !temporaryPlacement(eps[i-1].Place)
}

// otherFiles adds the child's rows to the SSDA903 files beside the header
// and episodes: UASC, OC2, OC3, AD1, placed for adoption, previous
// permanence, missing and reviews.
func (in *returnsInput) otherFiles(r *Returns, rng *rand.Rand, child Child, eps []Episode, ys day) {
	f := &r.SSDA903
	today := in.today
	dob := dayOf(child.DOB)
	ageOn := func(d day) int { return int(float64(d-dob) / 365.25) }
	first, last := eps[0], eps[len(eps)-1]
	start := dayOf(first.Start)
	d := func(t day) string { return t.time().Format("02/01/2006") }
	dt := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("02/01/2006")
	}
	if ageOn(start) >= 14 && first.LS == "V2" && rng.Float64() < 0.3 {
		duc := dayOf(child.DOB.AddDate(18, 0, 0))
		f.UASC = append(f.UASC, []string{child.ID, child.Sex, d(dob), d(duc)})
	}
	if start >= ys {
		f.PreviousPermanence = append(f.PreviousPermanence, []string{child.ID, d(dob), pick(rng, "Z1", "Z1", "Z1", "Z1", "P1", "P2", "P4"), "", ""})
	}
	if last.End.IsZero() && today-start >= 365 {
		sdq := ""
		reason := ""
		if a := ageOn(today); a >= 4 && a <= 17 {
			if rng.Float64() < 0.85 {
				sdq = fmt.Sprint(rng.IntN(31))
			} else {
				reason = pick(rng, "SDQ1", "SDQ2", "SDQ3", "SDQ4", "SDQ5")
			}
		}
		flag := func(p float64) string {
			if rng.Float64() < p {
				return "1"
			}
			return "0"
		}
		f.OC2 = append(f.OC2, []string{child.ID, d(dob), sdq, reason, flag(0.03), flag(0.9), flag(0.85), flag(0.8), flag(0.9), flag(0.04), "", ""})
	}
	if !last.End.IsZero() && ageOn(dayOf(last.End)) >= 16 {
		accom := pick(rng, "D1", "E1", "K1", "B1", "U1", "Z1", "T1", "C1", "W2", "S2", "0")
		f.OC3 = append(f.OC3, []string{child.ID, d(dob), pick(rng, "YES", "YES", "YES", "YES", "NO", "REFU"),
			pick(rng, "F2", "P2", "F5", "F4", "G5", "G4", "G6", "F1", "0"), accom})
		r.CareLeavers = append(r.CareLeavers, CareLeaver{Child: child.ID, DOB: child.DOB, LatestContact: (today - day(rng.IntN(60))).time(),
			Accommodation: accom, Activity: "F2"})
	}
	if last.REC == "E11" || last.REC == "E12" {
		placed := last.Start
		for _, e := range eps {
			if e.Place == "A5" || e.Place == "A6" {
				placed = e.Start
				break
			}
		}
		f.AD1 = append(f.AD1, []string{child.ID, d(dob), dt(placed.AddDate(0, -4, 0)), dt(placed.AddDate(0, 0, -21)),
			pick(rng, "0", "1"), pick(rng, "1", "2", "2"), pick(rng, "MF", "MF", "FF", "MM", "F1"), pick(rng, "L0", "L11", "L12", "L2")})
	}
	for _, e := range eps {
		if e.Place == "A5" || e.Place == "A6" {
			row := []string{child.ID, d(dob), dt(e.Start), "", ""}
			if !last.End.IsZero() && last.REC != "E11" && last.REC != "E12" {
				row[3], row[4] = dt(last.End), pick(rng, "RD1", "RD2", "RD3", "RD4")
			}
			f.PlacedForAdoption = append(f.PlacedForAdoption, row)
			break
		}
	}
	if a := ageOn(today); a >= 11 {
		for range poisson(rng, 0.6) {
			ms := ys + day(rng.IntN(max(int(today-ys), 1)))
			if ms < start || ms > today {
				continue
			}
			me := ms + day(rng.IntN(3))
			if me > today {
				me = today
			}
			f.Missing = append(f.Missing, []string{child.ID, d(dob), pick(rng, "M", "M", "A"), d(ms), d(me)})
		}
	}
	// Reviews: 20 working days after the start of care, three months after
	// that, then every six months.
	rev := in.cal.addWorking(start, 20)
	for i := 0; ; i++ {
		periodEnd := today
		if !last.End.IsZero() {
			periodEnd = dayOf(last.End)
		}
		if rev > periodEnd || rev > today {
			break
		}
		if rev >= ys {
			code := pick(rng, "PN1", "PN1", "PN2", "PN3", "PN4", "PN5", "PN6", "PN7")
			if ageOn(rev) < 4 {
				code = "PN0"
			}
			f.Reviews = append(f.Reviews, []string{child.ID, d(dob), d(rev), code})
		}
		months := 6
		if i == 0 {
			months = 3
		}
		rev = in.cal.onOrAfter(dayOf(rev.time().AddDate(0, months, 0)))
	}
}
