package collector

import (
	"math"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// evalExpr computes a value expression, reading each column through
// operand. A missing operand makes the result missing, and so does a
// division by zero or any result that is not a finite number: missing is
// not zero, and a rate over an empty denominator is not infinite.
func evalExpr(e *config.Expr, operand func(column string) (kpi.Value, error)) (kpi.Value, error) {
	switch e.Op {
	case config.OpNumber:
		return finite(e.Number), nil
	case config.OpColumn:
		return operand(e.Column)
	case config.OpNeg:
		v, err := evalExpr(e.Left, operand)
		if err != nil || !v.Valid {
			return kpi.Missing, err
		}
		return kpi.Known(-v.V), nil
	}
	// Both sides are read, even when the left is missing, so that a
	// malformed cell on the right is reported rather than hidden.
	l, err := evalExpr(e.Left, operand)
	if err != nil {
		return kpi.Missing, err
	}
	r, err := evalExpr(e.Right, operand)
	if err != nil {
		return kpi.Missing, err
	}
	if !l.Valid || !r.Valid {
		return kpi.Missing, nil
	}
	switch e.Op {
	case config.OpAdd:
		return finite(l.V + r.V), nil
	case config.OpSub:
		return finite(l.V - r.V), nil
	case config.OpMul:
		return finite(l.V * r.V), nil
	case config.OpDiv:
		if r.V == 0 {
			return kpi.Missing, nil
		}
		return finite(l.V / r.V), nil
	}
	return kpi.Missing, nil
}

func finite(f float64) kpi.Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return kpi.Missing
	}
	return kpi.Known(f)
}
