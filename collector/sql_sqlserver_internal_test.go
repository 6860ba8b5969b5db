package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// SQL Server cannot run on the machines the tests run on: these tests cover
// what the dialect does before and after the server, and the rest of the
// path is the one PostgreSQL and MariaDB share, tested against real servers.

func TestSQLServerDSNAlwaysNamesCarewatch(t *testing.T) {
	for _, dsn := range []string{
		"sqlserver://carewatch:s3cr3t-pw@db.example:1433?database=cms&app+name=other",
		"server=db.example;user id=carewatch;password=s3cr3t-pw;database=cms;app name=other;ApplicationIntent=ReadOnly",
	} {
		cfg, err := sqlServerConfig(dsn)
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		if cfg.AppName != ApplicationName || cfg.Database != "cms" || cfg.Password != "s3cr3t-pw" {
			t.Errorf("%s: app name %q, database %q", dsn, cfg.AppName, cfg.Database)
		}
		if strings.Contains(dsn, "ApplicationIntent=ReadOnly") && !cfg.ReadOnlyIntent {
			t.Errorf("%s: ApplicationIntent=ReadOnly is lost", dsn)
		}
	}
}

func TestSQLServerBadDSNIsRefusedWithoutQuotingIt(t *testing.T) {
	for _, dsn := range []string{
		"sqlserver://carewatch:s3cr3t-pw@db.example:port?database=cms",
		"server=db.example;password=s3cr3t-pw;encrypt=s3cr3t-mode",
	} {
		_, err := sqlServerConfig(dsn)
		if err == nil {
			t.Errorf("%s: accepted", dsn)
			continue
		}
		if !strings.HasPrefix(err.Error(), "the DSN is not valid") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %q quotes the DSN's secret or does not say the DSN is not valid", err)
		}
	}
}

func TestSQLServerRefusesABatchOfSeveralStatements(t *testing.T) {
	for _, tt := range []struct {
		query string
		ok    bool
	}{
		{"SELECT team, COUNT(*) AS caseload FROM dbo.cases GROUP BY team", true},
		{"SELECT team, COUNT(*) AS caseload FROM dbo.cases GROUP BY team;", true},
		{"SELECT 'a;b' AS [odd;name] -- a comment; with a semicolon\nFROM dbo.cases", true},
		{"WITH c AS (SELECT 1 AS n) SELECT n FROM c /* ; */", true},
		{"DELETE FROM dbo.cases; SELECT 1 AS caseload", false},
		{"SELECT 1 AS caseload\nGO\nDELETE FROM dbo.cases", false},
	} {
		err := oneTSQLStatement(tt.query)
		if (err == nil) != tt.ok {
			t.Errorf("%q: error %v, want ok %t", tt.query, err, tt.ok)
		}
	}
}

func TestSQLServerErrorsRetryingCannotMendArePermanent(t *testing.T) {
	for _, tt := range []struct {
		number int32
		want   bool
	}{
		{102, true},   // syntax
		{208, true},   // invalid object name
		{207, true},   // invalid column name
		{229, true},   // permission denied: the login is a reader
		{8134, true},  // divide by zero
		{1205, false}, // chosen as a deadlock victim: try again
		{-2, false},
	} {
		err := fmt.Errorf("query: %w", mssql.Error{Number: tt.number, Message: "m"})
		if got := permanentSQLServer(err); got != tt.want {
			t.Errorf("error %d: permanent %t, want %t", tt.number, got, tt.want)
		}
	}
}

func TestSQLServerTimesAreCalendarValuesExceptDatetimeoffset(t *testing.T) {
	utc := time.Date(2025, 9, 30, 0, 0, 0, 0, time.UTC)
	for _, typ := range []string{"DATE", "DATETIME", "DATETIME2", "SMALLDATETIME"} {
		got := sqlServerTime(typ, utc)
		if name, off := got.Zone(); name != "" || off != 0 || got.Day() != 30 || got.Hour() != 0 {
			t.Errorf("%s: %v, want 30 September with no zone, for the run's time zone to place", typ, got)
		}
	}
	if got := sqlServerTime("DATETIMEOFFSET", utc); got != utc {
		t.Errorf("DATETIMEOFFSET: %v, want the instant %v", got, utc)
	}
}
