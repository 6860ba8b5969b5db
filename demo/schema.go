package demo

// schemaDDL creates the demo council's reporting warehouse. It is shaped
// like the reporting copies councils keep of their case-management system
// (cms), their HR establishment (hr) and reference data (ref); demo_sim
// holds what only the simulation needs: the seed, each team's demand, and
// the due dates it has drawn for work still open.
const schemaDDL = `
DROP SCHEMA IF EXISTS demo_sim CASCADE;
DROP SCHEMA IF EXISTS hr CASCADE;
DROP SCHEMA IF EXISTS cms CASCADE;
DROP SCHEMA IF EXISTS ref CASCADE;
CREATE SCHEMA cms;
CREATE SCHEMA hr;
CREATE SCHEMA ref;
CREATE SCHEMA demo_sim;

COMMENT ON SCHEMA cms IS 'Synthetic case-management reporting extract of the carewatch demo council.';
COMMENT ON SCHEMA hr IS 'Synthetic HR establishment of the carewatch demo council.';

CREATE TABLE cms.reporting_date (
	today date NOT NULL
);
CREATE UNIQUE INDEX reporting_date_one_row ON cms.reporting_date ((true));
COMMENT ON TABLE cms.reporting_date IS 'The date of the extract: queries use it instead of now().';

CREATE TABLE cms.team (
	team_id   integer PRIMARY KEY,
	team_name text NOT NULL UNIQUE,
	service   text NOT NULL CHECK (service IN ('children', 'adults')),
	team_type text NOT NULL CHECK (team_type IN ('assessment', 'family_support', 'children_in_care', 'disabilities', 'front_door', 'long_term'))
);

CREATE TABLE cms.worker (
	worker_id       integer PRIMARY KEY,
	team_id         integer NOT NULL,
	role            text NOT NULL CHECK (role IN ('team_manager', 'senior_practitioner', 'social_worker', 'practitioner')),
	fte             numeric(3,2) NOT NULL CHECK (fte > 0 AND fte <= 1),
	employment      text NOT NULL CHECK (employment IN ('permanent', 'agency')),
	newly_qualified boolean NOT NULL,
	qualified       boolean NOT NULL,
	started_on      date NOT NULL,
	left_on         date CHECK (left_on >= started_on)
);
CREATE INDEX worker_team ON cms.worker (team_id);

CREATE TABLE cms.child_case (
	case_id   integer PRIMARY KEY,
	team_id   integer NOT NULL,
	worker_id integer,
	case_type text NOT NULL CHECK (case_type IN ('assessment', 'cin', 'cp', 'cla')),
	opened    date NOT NULL,
	closed    date CHECK (closed >= opened)
);
CREATE INDEX child_case_open ON cms.child_case (worker_id) WHERE closed IS NULL;

CREATE TABLE cms.child_assessment (
	assessment_id  integer PRIMARY KEY,
	case_id        integer NOT NULL,
	team_id        integer NOT NULL,
	referral_date  date NOT NULL,
	completed_date date CHECK (completed_date >= referral_date)
);
CREATE INDEX child_assessment_completed ON cms.child_assessment (completed_date);

CREATE TABLE cms.adult_assessment_request (
	request_id integer PRIMARY KEY,
	team_id    integer NOT NULL,
	requested  date NOT NULL,
	assessed   date CHECK (assessed >= requested)
);
CREATE INDEX adult_assessment_request_waiting ON cms.adult_assessment_request (team_id) WHERE assessed IS NULL;

CREATE TABLE hr.establishment (
	post_id          integer PRIMARY KEY,
	team_id          integer NOT NULL,
	role             text NOT NULL CHECK (role IN ('team_manager', 'senior_practitioner', 'social_worker', 'practitioner')),
	fte              numeric(3,2) NOT NULL CHECK (fte > 0 AND fte <= 1),
	status           text NOT NULL CHECK (status IN ('filled', 'vacant')),
	worker_id        integer,
	agency_cover_fte numeric(3,2) NOT NULL DEFAULT 0 CHECK (agency_cover_fte >= 0),
	cover_worker_id  integer,
	CHECK ((status = 'filled') = (worker_id IS NOT NULL)),
	CHECK ((agency_cover_fte > 0) = (cover_worker_id IS NOT NULL)),
	CHECK (status = 'vacant' OR cover_worker_id IS NULL)
);
COMMENT ON COLUMN hr.establishment.agency_cover_fte IS 'Agency FTE covering this post while it is vacant.';

CREATE TABLE ref.bank_holiday (
	day  date PRIMARY KEY,
	name text NOT NULL
);
COMMENT ON TABLE ref.bank_holiday IS 'England and Wales bank holidays.';

CREATE TABLE demo_sim.state (
	seed bigint NOT NULL,
	set_up_for date NOT NULL
);
CREATE UNIQUE INDEX state_one_row ON demo_sim.state ((true));

CREATE TABLE demo_sim.team_profile (
	team_id         integer PRIMARY KEY,
	referral_weight double precision NOT NULL,
	late_share      double precision NOT NULL,
	cin_per_day     double precision NOT NULL,
	cp_per_day      double precision NOT NULL,
	cla_per_day     double precision NOT NULL,
	fill_hazard     double precision NOT NULL,
	cover_hazard    double precision NOT NULL,
	adult_per_day   double precision NOT NULL,
	adult_fast_days double precision NOT NULL,
	adult_slow_share double precision NOT NULL,
	adult_slow_days double precision NOT NULL
);

CREATE TABLE demo_sim.assessment_due (
	assessment_id integer PRIMARY KEY,
	due           date NOT NULL
);

CREATE TABLE demo_sim.adult_request_due (
	request_id integer PRIMARY KEY,
	due        date NOT NULL
);
`

// foreignKeysDDL adds the foreign keys once the tables are loaded: checking
// them all at once is several times faster than row by row during COPY.
const foreignKeysDDL = `
ALTER TABLE cms.worker ADD FOREIGN KEY (team_id) REFERENCES cms.team;
ALTER TABLE cms.child_case ADD FOREIGN KEY (team_id) REFERENCES cms.team,
	ADD FOREIGN KEY (worker_id) REFERENCES cms.worker;
ALTER TABLE cms.child_assessment ADD FOREIGN KEY (case_id) REFERENCES cms.child_case,
	ADD FOREIGN KEY (team_id) REFERENCES cms.team;
ALTER TABLE cms.adult_assessment_request ADD FOREIGN KEY (team_id) REFERENCES cms.team;
ALTER TABLE hr.establishment ADD FOREIGN KEY (team_id) REFERENCES cms.team,
	ADD FOREIGN KEY (worker_id) REFERENCES cms.worker,
	ADD FOREIGN KEY (cover_worker_id) REFERENCES cms.worker;
ALTER TABLE demo_sim.team_profile ADD FOREIGN KEY (team_id) REFERENCES cms.team;
ALTER TABLE demo_sim.assessment_due ADD FOREIGN KEY (assessment_id) REFERENCES cms.child_assessment;
ALTER TABLE demo_sim.adult_request_due ADD FOREIGN KEY (request_id) REFERENCES cms.adult_assessment_request;
`
