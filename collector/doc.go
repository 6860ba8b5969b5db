// Package collector turns the council's own systems into KPI observations.
//
// It holds one file per source kind (SQL databases, CSV and XLSX files,
// HTTP APIs answering JSON or CSV), the Mapper that turns rows into
// observations for all of them, and the Scheduler that runs collections on
// their cron schedules with timeouts, retries and no overlapping runs. It
// knows nothing of the store or the exporter: the two meet in cmd through the
// contracts of package kpi.
package collector
