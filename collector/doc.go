// Package collector turns the council's own systems into KPI observations.
//
// It holds Sources, the factory from a source type to its constructor, which
// owns the SQL connection pools; one file per source kind (each SQL dialect,
// CSV and XLSX files, HTTP APIs answering JSON or CSV); SQL over the rows of
// files and answers (query.go); the Mapper that turns rows into
// observations for all of them, and the Scheduler that runs collections on
// their cron schedules with timeouts, retries and no overlapping runs. It
// knows nothing of the store or the exporter: the two meet in cmd through the
// contracts of package kpi.
package collector
