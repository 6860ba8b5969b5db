package config

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	promconfig "github.com/prometheus/common/config"

	"github.com/carewatch/carewatch/kpi"
)

// Source types.
const (
	SourcePostgres = "postgres"
	// SourceMySQL is a MySQL or MariaDB server; "mariadb" is the same type.
	SourceMySQL     = "mysql"
	SourceMariaDB   = "mariadb"
	SourceSQLServer = "sqlserver"
	SourceFile      = "file"
	SourceHTTP      = "http"
)

// IsSQL reports whether a source type is a SQL database, whose collectors
// give a query and whose connection string comes from dsn_env or dsn_file.
func IsSQL(typ string) bool {
	switch typ {
	case SourcePostgres, SourceMySQL, SourceMariaDB, SourceSQLServer:
		return true
	}
	return false
}

// Table formats.
const (
	FormatCSV  = "csv"
	FormatXLSX = "xlsx"
	FormatJSON = "json"
)

// Text encodings of CSV tables, by their canonical names.
const (
	EncodingUTF8        = "utf-8"
	EncodingWindows1252 = "windows-1252"
	EncodingLatin1      = "iso-8859-1"
)

var encodingNames = map[string]string{
	"utf-8": EncodingUTF8, "utf8": EncodingUTF8,
	"windows-1252": EncodingWindows1252, "cp1252": EncodingWindows1252,
	"iso-8859-1": EncodingLatin1, "latin-1": EncodingLatin1, "latin1": EncodingLatin1,
}

// Ways a file collector picks among the files its glob matches.
const (
	SelectNewest = "newest"
	SelectAll    = "all"
)

// forbiddenHeaders are request headers that carry credentials: they belong
// in the source's http_config, whose secrets come from files.
var forbiddenHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

type keyCheck struct {
	key string
	set bool
}

// only refuses the keys that are set but do not belong to a source of typ.
func (v *validator) only(p, typ string, keys ...keyCheck) {
	for _, k := range keys {
		if k.set {
			v.addf(p+"."+k.key, "is not a setting of a %s source", typ)
		}
	}
}

func (v *validator) sources(ss []SourceConfig) {
	first := map[string]int{}
	for i := range ss {
		s := &ss[i]
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			v.addf(p+".name", "is required")
		default:
			if j, dup := first[s.Name]; dup {
				v.addf(p+".name", "duplicate source name %q (first defined at sources[%d])", s.Name, j)
			} else {
				first[s.Name] = i
			}
		}
		switch {
		case s.Type == "":
			v.addf(p+".type", "is required: one of %s", strings.Join(sortedKeys(SourceTypes), ", "))
		case !SourceTypes[s.Type]:
			v.addf(p+".type", "unknown source type %q: one of %s", s.Type, strings.Join(sortedKeys(SourceTypes), ", "))
		}
		sqlKeys := []keyCheck{
			{"dsn_env", s.DSNEnv != ""}, {"dsn_file", s.DSNFile != ""}, {"max_open_conns", s.MaxOpenConns != 0},
			{"conn_max_lifetime", s.ConnMaxLifetime != 0}, {"statement_timeout", s.StatementTimeout != 0},
		}
		fileKeys := []keyCheck{{"directory", s.Directory != ""}, {"max_file_size", s.MaxFileSize != 0}}
		httpKeys := []keyCheck{{"base_url", s.BaseURL != ""}, {"http_config", s.HTTPConfig != nil}, {"max_body_size", s.MaxBodySize != 0}}
		switch s.Type {
		case SourceFile:
			v.only(p, s.Type, append(sqlKeys, httpKeys...)...)
			v.fileSource(p, s)
		case SourceHTTP:
			v.only(p, s.Type, append(sqlKeys, fileKeys...)...)
			v.httpSource(p, s)
		case SourcePostgres, SourceMySQL, SourceMariaDB, SourceSQLServer:
			v.only(p, s.Type, append(fileKeys, httpKeys...)...)
			v.sqlSource(p, s)
		}
	}
}

func (v *validator) sqlSource(p string, s *SourceConfig) {
	if s.DSNEnv == "" && s.DSNFile == "" {
		v.addf(p, "a %s source needs dsn_env or dsn_file (connection strings never sit in the config text)", s.Type)
	}
	if s.DSNEnv != "" && s.DSNFile != "" {
		v.addf(p+".dsn_file", "give dsn_env or dsn_file, not both")
	}
	if s.DSNEnv != "" && !validEnvName(s.DSNEnv) {
		v.addf(p+".dsn_env", errNotEnvName)
	}
	if s.MaxOpenConns < 0 {
		v.addf(p+".max_open_conns", "must not be negative")
	}
	if s.StatementTimeout < 0 {
		v.addf(p+".statement_timeout", "must not be negative")
	}
}

func (v *validator) fileSource(p string, s *SourceConfig) {
	if strings.TrimSpace(s.Directory) == "" {
		v.addf(p+".directory", "is required: the folder the source reads, and the only one it may read")
		return
	}
	dir := s.Directory
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(v.dir, dir)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	s.Directory = filepath.Clean(dir)
}

// errSecretParam is the error for a URL whose query carries a secret.
const errSecretParam = "the query parameter %q carries a secret, which would be recorded with every run and logged: " +
	"send it in a header read from a file (http_config.http_headers with files, or http_config.authorization.credentials_file)"

// secretWords are query parameter names, lower case without - and _, that
// carry credentials.
var secretWords = []string{"key", "apikey", "token", "accesstoken", "authtoken", "secret", "clientsecret",
	"password", "passwd", "pwd", "signature", "sig", "auth", "authorization", "credential", "credentials"}

// secretQueryParam returns the name of u's first query parameter that
// carries a secret, or "".
func secretQueryParam(u *url.URL) string {
	for name := range u.Query() {
		norm := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "").Replace(name))
		for _, w := range secretWords {
			if norm == w || strings.HasSuffix(norm, w) && w != "key" && w != "sig" && w != "auth" || norm == "x"+w {
				return name
			}
		}
	}
	return ""
}

func (v *validator) httpSource(p string, s *SourceConfig) {
	if s.BaseURL == "" {
		v.addf(p+".base_url", "is required: the scheme and host the source's collectors send requests to, e.g. https://api.example.org/v1/")
	} else if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.addf(p+".base_url", "%q is not an http or https URL", s.BaseURL)
	} else if u.User != nil {
		v.addf(p+".base_url", "must not hold credentials (secrets never sit in the config text): use http_config's basic_auth with password_file")
	} else if name := secretQueryParam(u); name != "" {
		v.addf(p+".base_url", errSecretParam, name)
	}
	if s.HTTPConfig == nil {
		s.HTTPConfig = &HTTPClientConfig{HTTPClientConfig: promconfig.DefaultHTTPClientConfig}
		return
	}
	hp := p + ".http_config"
	hc := &s.HTTPConfig.HTTPClientConfig
	if err := hc.Validate(); err != nil {
		v.addf(hp, "%v", err)
	}
	inline := func(key string, set bool, use string) {
		if set {
			v.addf(hp+"."+key, "secrets never sit in the config text: use %s", use)
		}
	}
	noRef := func(key string, set bool, use string) {
		if set {
			v.addf(hp+"."+key, "carewatch has no secret manager: use %s", use)
		}
	}
	inline("bearer_token", hc.BearerToken != "", "authorization.credentials_file")
	if a := hc.Authorization; a != nil {
		inline("authorization.credentials", a.Credentials != "", "authorization.credentials_file")
		noRef("authorization.credentials_ref", a.CredentialsRef != "", "authorization.credentials_file")
	}
	if b := hc.BasicAuth; b != nil {
		inline("basic_auth.password", b.Password != "", "basic_auth.password_file")
		noRef("basic_auth.password_ref", b.PasswordRef != "", "basic_auth.password_file")
		noRef("basic_auth.username_ref", b.UsernameRef != "", "basic_auth.username or username_file")
	}
	if o := hc.OAuth2; o != nil {
		inline("oauth2.client_secret", o.ClientSecret != "", "oauth2.client_secret_file")
		inline("oauth2.client_certificate_key", o.ClientCertificateKey != "", "oauth2.client_certificate_key_file")
		noRef("oauth2.client_secret_ref", o.ClientSecretRef != "", "oauth2.client_secret_file")
		noRef("oauth2.client_certificate_key_ref", o.ClientCertificateKeyRef != "", "oauth2.client_certificate_key_file")
	}
	inline("tls_config.key", hc.TLSConfig.Key != "", "tls_config.key_file")
	noRef("tls_config.key_ref", hc.TLSConfig.KeyRef != "", "tls_config.key_file")
	if hc.HTTPHeaders != nil {
		for _, name := range sortedKeys(hc.HTTPHeaders.Headers) {
			inline("http_headers."+name+".secrets", len(hc.HTTPHeaders.Headers[name].Secrets) > 0, "http_headers."+name+".files")
		}
	}
	inline("proxy_connect_header", len(hc.ProxyConnectHeader) > 0, "a proxy that needs no credentials in the config")
	hc.SetDirectory(v.dir)
}

// ResolveURL resolves a collector's URL against an http source's base_url,
// refusing one that leaves its scheme and host: the source's credentials
// would go with the request.
func (s *SourceConfig) ResolveURL(ref string) (*url.URL, error) {
	base, err := url.Parse(s.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("base_url %q: %w", s.BaseURL, err)
	}
	rel, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", ref, err)
	}
	u := base.ResolveReference(rel)
	if u.Scheme != base.Scheme || u.Host != base.Host {
		return nil, fmt.Errorf("%q leaves source %q's base_url %s: its credentials are for %s://%s only", ref, s.Name, s.BaseURL, base.Scheme, base.Host)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q holds credentials (secrets never sit in the config text)", ref)
	}
	return u, nil
}

func (v *validator) collectors(c *Config) {
	if len(c.Collectors) == 0 {
		v.addf("collectors", "at least one collector is required")
	}
	first := map[string]int{}
	for i := range c.Collectors {
		cc := &c.Collectors[i]
		p := fmt.Sprintf("collectors[%d]", i)
		switch {
		case cc.Name == "":
			v.addf(p+".name", "is required")
		case !reName.MatchString(cc.Name):
			v.addf(p+".name", "%q must be lower-case letters, digits and underscores, starting with a letter", cc.Name)
		default:
			if j, dup := first[cc.Name]; dup {
				v.addf(p+".name", "duplicate collector name %q (first defined at collectors[%d])", cc.Name, j)
			} else {
				first[cc.Name] = i
			}
		}
		var src *SourceConfig
		if cc.Source == "" {
			v.addf(p+".source", "is required")
		} else if src = c.SourceByName(cc.Source); src == nil {
			v.addf(p+".source", "source %q is not defined under sources", cc.Source)
		}
		if cc.Schedule == "" {
			v.addf(p+".schedule", "is required: a cron expression (\"0 6 * * *\") or a descriptor (\"@daily\", \"@every 15m\")")
		} else if s, err := ParseSchedule(cc.Schedule); err != nil {
			v.addf(p+".schedule", "%q is not a valid schedule: %v", cc.Schedule, err)
		} else {
			cc.ParsedSchedule = s
		}
		if cc.Timeout < 0 {
			v.addf(p+".timeout", "must be positive")
		}
		if cc.Retries != nil && *cc.Retries < 0 {
			v.addf(p+".retries", "must not be negative")
		}
		if cc.MaxSeries < 0 {
			v.addf(p+".max_series", "must be positive")
		}
		v.input(p, cc, src)
		typ := ""
		if src != nil {
			typ = src.Type
		}
		v.collectorExpect(p, cc, typ)
		v.period(p, cc)
		if len(cc.Metrics) == 0 {
			v.addf(p+".metrics", "at least one metric mapping is required")
		}
		for j := range cc.Metrics {
			v.mapping(fmt.Sprintf("%s.metrics[%d]", p, j), &cc.Metrics[j], c.Catalogue)
		}
	}
}

// input checks what the collector reads, against its source's type.
func (v *validator) input(p string, cc *CollectorConfig, src *SourceConfig) {
	typ := SourcePostgres
	if src != nil {
		typ = src.Type
	}
	refuse := func(key string, set bool, forTypes string) {
		if set {
			v.addf(p+"."+key, "is for %s sources, and source %q is a %s source", forTypes, cc.Source, typ)
		}
	}
	switch typ {
	case SourceFile:
		refuse("http", cc.HTTP != nil, "http")
		v.rowQuery(p, cc)
		v.fileInput(p, cc)
	case SourceHTTP:
		refuse("file", cc.File != nil, "file")
		v.rowQuery(p, cc)
		refuse("benchmark", cc.Benchmark != nil, "file")
		v.httpInput(p, cc, src)
	default:
		if src != nil && SourceTypes[typ] {
			refuse("file", cc.File != nil, "file")
			refuse("http", cc.HTTP != nil, "http")
			if len(cc.Filters) > 0 {
				v.addf(p+".filters", "are for file and http sources: a SQL query filters with WHERE")
			}
			refuse("benchmark", cc.Benchmark != nil, "file")
		}
		if strings.TrimSpace(cc.Query) == "" && (src == nil || IsSQL(typ)) {
			v.addf(p+".query", "is required for a SQL source")
		}
	}
	for j := range cc.Filters {
		v.filter(fmt.Sprintf("%s.filters[%d]", p, j), &cc.Filters[j])
	}
	if b := cc.Benchmark; b != nil && typ == SourceFile {
		bp := p + ".benchmark"
		if strings.TrimSpace(b.Council) == "" {
			v.addf(bp+".council", "is required: the council's ONS code (E09000008) or DfE code (306)")
		}
		switch {
		case b.NeighboursFile == "":
			v.addf(bp+".neighbours_file", "is required: DfE's statistical neighbour model, e.g. sn_model_2025_wide.csv")
		case !filepath.IsLocal(filepath.FromSlash(b.NeighboursFile)):
			v.addf(bp+".neighbours_file", "%q must be a path inside the source's directory", b.NeighboursFile)
		case FormatOf(b.NeighboursFile) == "":
			v.addf(bp+".neighbours_file", "%q must be a .csv or .xlsx file", b.NeighboursFile)
		}
	}
}

// rowQuery checks the optional query of a file or http collector. The
// engine's own parser judges the SQL when the query runs: the tables it
// names exist only then.
func (v *validator) rowQuery(p string, cc *CollectorConfig) {
	if cc.Query != "" && strings.TrimSpace(cc.Query) == "" {
		v.addf(p+".query", "is blank: give the SQL to run over the rows read, or leave query out")
	}
}

// tableName checks a table name given in the config.
func (v *validator) tableName(p, name string, hasQuery bool) {
	switch {
	case !reTable.MatchString(name):
		v.addf(p, "%q must be lower-case letters, digits and underscores, not starting with a digit", name)
	case !hasQuery:
		v.addf(p, "names the table a query reads, and the collector has no query")
	}
}

var reTable = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

var reNotTable = regexp.MustCompile(`[^a-z0-9_]+`)

// TableName is the name a query uses for the table of a file or worksheet
// name: lower-cased, each run of characters other than a-z, 0-9 and _ made
// one _, with no _ at either end; a name that would be empty or start with a
// digit is prefixed with t_. "CLA 2025 (final)" is cla_2025_final, "2025"
// is t_2025.
func TableName(name string) string {
	t := strings.Trim(reNotTable.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "_"), "_")
	if t == "" || (t[0] >= '0' && t[0] <= '9') {
		t = "t_" + t
	}
	return strings.TrimSuffix(t, "_")
}

// FileTableName is the name a query uses for a file read without
// file.table: TableName of its name without folder and extension, so that
// returns/episodes.csv is episodes.
func FileTableName(file string) string {
	base := path.Base(filepath.ToSlash(file))
	return TableName(strings.TrimSuffix(base, path.Ext(base)))
}

func (v *validator) fileInput(p string, cc *CollectorConfig) {
	f := cc.File
	if f == nil {
		v.addf(p+".file", "is required for a file source: a path, or a glob with select newest or all")
		return
	}
	fp := p + ".file"
	name := f.Path
	switch {
	case f.Path == "" && f.Glob == "":
		v.addf(fp, "give path (one file) or glob (several)")
	case f.Path != "" && f.Glob != "":
		v.addf(fp+".glob", "give path or glob, not both")
	case f.Path != "":
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			v.addf(fp+".path", "%q must be a path inside the source's directory", f.Path)
		}
		if f.Select != "" {
			v.addf(fp+".select", "is for a glob: a path names one file")
		}
	default:
		name = f.Glob
		if _, err := path.Match(f.Glob, ""); err != nil {
			v.addf(fp+".glob", "%q is not a valid pattern: %v", f.Glob, err)
		} else if !filepath.IsLocal(filepath.FromSlash(f.Glob)) {
			v.addf(fp+".glob", "%q must match paths inside the source's directory", f.Glob)
		}
		switch f.Select {
		case "":
			f.Select = SelectNewest
		case SelectNewest, SelectAll:
		default:
			v.addf(fp+".select", "%q is not one of newest, all", f.Select)
		}
	}
	if f.NamePattern != "" {
		re, err := regexp.Compile(f.NamePattern)
		switch {
		case err != nil:
			v.addf(fp+".name_pattern", "is not a valid regular expression: %v", err)
		case !hasNamedGroup(re):
			v.addf(fp+".name_pattern", "has no named group such as (?P<period>\\d{4}-\\d{2}): its named groups are the columns it adds")
		default:
			f.NameRegexp = re
		}
	}
	if f.Format == "" {
		f.Format = FormatOf(name)
	}
	switch f.Format {
	case FormatCSV, FormatXLSX:
	case "":
		v.addf(fp+".format", "is required: csv or xlsx (the file name does not say which)")
	default:
		v.addf(fp+".format", "%q is not one of csv, xlsx (an .xls workbook must be saved as .xlsx or CSV)", f.Format)
	}
	v.table(fp, &f.TableOptions)
	if f.Table != "" {
		v.tableName(fp+".table", f.Table, cc.Query != "")
	}
	if f.Sheets != nil {
		switch {
		case f.Format != FormatXLSX && f.Format != "":
			v.addf(fp+".sheets", "are for an xlsx workbook")
		case len(f.Sheets) == 0:
			v.addf(fp+".sheets", "is empty: name the worksheets read, or leave sheets out to read the first")
		case f.Sheet != "":
			v.addf(fp+".sheets", "give sheet (one worksheet) or sheets (several), not both")
		case f.Table != "":
			v.addf(fp+".table", "is for a file read as one table: with sheets, each sheet is a table named after it")
		}
		seen := map[string]string{}
		for j, sh := range f.Sheets {
			name := TableName(sh)
			switch {
			case strings.TrimSpace(sh) == "":
				v.addf(fmt.Sprintf("%s.sheets[%d]", fp, j), "is empty")
			case seen[name] != "":
				v.addf(fmt.Sprintf("%s.sheets[%d]", fp, j), "%q and %q would both be table %s", seen[name], sh, name)
			default:
				seen[name] = sh
			}
		}
	}
}

// FormatOf is the table format a file's name says: csv for .csv and .txt,
// xlsx for .xlsx and .xlsm, "" for anything else.
func FormatOf(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".csv", ".txt":
		return FormatCSV
	case ".xlsx", ".xlsm":
		return FormatXLSX
	}
	return ""
}

func hasNamedGroup(re *regexp.Regexp) bool {
	for _, n := range re.SubexpNames() {
		if n != "" {
			return true
		}
	}
	return false
}

// table checks and defaults the options of a CSV or XLSX table.
func (v *validator) table(p string, t *TableOptions) {
	if t.HeaderRow < 0 {
		v.addf(p+".header_row", "must be 1 or more (the spreadsheet's row number)")
	}
	if t.HeaderRow == 0 {
		t.HeaderRow = 1
	}
	if t.Sheet != "" && t.Format != FormatXLSX {
		v.addf(p+".sheet", "is for an xlsx workbook")
	}
	if t.Format != FormatCSV {
		if t.Encoding != "" {
			v.addf(p+".encoding", "is for CSV text")
		}
		if t.Delimiter != "" {
			v.addf(p+".delimiter", "is for CSV text")
		}
		return
	}
	if t.Encoding == "" {
		t.Encoding = EncodingUTF8
	} else if e, ok := encodingNames[strings.ToLower(t.Encoding)]; ok {
		t.Encoding = e
	} else {
		v.addf(p+".encoding", "%q is not one of utf-8, windows-1252, iso-8859-1", t.Encoding)
	}
	switch t.Delimiter {
	case "":
		t.Delimiter = ","
	case `\t`:
		t.Delimiter = "\t"
	}
	if r, size := utf8.DecodeRuneInString(t.Delimiter); size != len(t.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
		v.addf(p+".delimiter", "%q must be one character other than a quote or a line break", t.Delimiter)
	}
}

func (v *validator) httpInput(p string, cc *CollectorConfig, src *SourceConfig) {
	h := cc.HTTP
	if h == nil {
		v.addf(p+".http", "is required for an http source: at least the url to request")
		return
	}
	hp := p + ".http"
	if strings.TrimSpace(h.URL) == "" {
		v.addf(hp+".url", "is required: the address requested, relative to the source's base_url")
	} else if u, err := url.Parse(h.URL); err == nil && secretQueryParam(u) != "" {
		v.addf(hp+".url", errSecretParam, secretQueryParam(u))
	} else if src.BaseURL != "" {
		if _, err := src.ResolveURL(h.URL); err != nil {
			v.addf(hp+".url", "%v", err)
		}
	}
	h.Method = strings.ToUpper(h.Method)
	switch h.Method {
	case "":
		h.Method = http.MethodGet
	case http.MethodGet, http.MethodPost:
	default:
		v.addf(hp+".method", "%q is not one of GET, POST (sources are read, never changed)", h.Method)
	}
	if h.Body != "" && h.Method != http.MethodPost {
		v.addf(hp+".body", "is sent with a POST only")
	}
	for _, name := range sortedKeys(h.Headers) {
		canon := http.CanonicalHeaderKey(name)
		if forbiddenHeaders[canon] {
			v.addf(hp+".headers."+name, "carries credentials, which belong in the source's http_config (authorization.credentials_file, basic_auth.password_file, oauth2)")
		}
	}
	if h.Format == "" {
		h.Format = FormatJSON
	}
	if h.Table == "" {
		h.Table = DefaultHTTPTable
	} else {
		v.tableName(hp+".table", h.Table, cc.Query != "")
	}
	switch h.Format {
	case FormatJSON:
		if h.Rows == "" {
			v.addf(hp+".rows", "is required for a JSON answer: the path to its rows, e.g. $.data[*]")
		} else if rp, err := ParseJSONPath(h.Rows, false); err != nil {
			v.addf(hp+".rows", "%v", err)
		} else {
			h.RowsPath = rp
		}
		h.FieldPaths = map[string]*JSONPath{}
		for _, col := range sortedKeys(h.Fields) {
			if strings.TrimSpace(col) == "" {
				v.addf(hp+".fields", "a column name is empty")
			}
			if fp, err := ParseJSONPath(h.Fields[col], true); err != nil {
				v.addf(hp+".fields."+col, "%v", err)
			} else if fp.Wildcards() {
				v.addf(hp+".fields."+col, "a field's path leads to one value: no [*] or .* (those are for the rows path)")
			} else {
				h.FieldPaths[col] = fp
			}
		}
		for _, k := range []keyCheck{{"encoding", h.Encoding != ""}, {"delimiter", h.Delimiter != ""}, {"sheet", h.Sheet != ""}, {"header_row", h.HeaderRow != 0}} {
			if k.set {
				v.addf(hp+"."+k.key, "is for a CSV answer")
			}
		}
	case FormatCSV:
		if h.Rows != "" {
			v.addf(hp+".rows", "is for a JSON answer")
		}
		if len(h.Fields) > 0 {
			v.addf(hp+".fields", "are for a JSON answer: a CSV answer's columns are its header's")
		}
		v.table(hp, &h.TableOptions)
	default:
		v.addf(hp+".format", "%q is not one of json, csv", h.Format)
	}
}

func (v *validator) filter(p string, f *RowFilter) {
	if strings.TrimSpace(f.Column) == "" {
		v.addf(p+".column", "is required: the column tested")
	}
	n := 0
	for _, set := range []bool{f.Equals != nil, f.NotEquals != nil, f.In != nil, f.NotIn != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.addf(p, "give exactly one of equals, not_equals, in, not_in")
	}
	if f.In != nil && len(f.In) == 0 {
		v.addf(p+".in", "is empty: no row would pass")
	}
	if f.NotIn != nil && len(f.NotIn) == 0 {
		v.addf(p+".not_in", "is empty")
	}
}

func (v *validator) period(p string, cc *CollectorConfig) {
	if cc.PeriodFormat == "" {
		if cc.PeriodDay != "" {
			v.addf(p+".period_day", "needs period_format: the day is for a period written without one")
		}
		return
	}
	hasColumn := cc.PeriodColumn != ""
	for _, m := range cc.Metrics {
		hasColumn = hasColumn || m.PeriodColumn != ""
	}
	if !hasColumn {
		v.addf(p+".period_format", "needs period_column: without it the period is the run's date")
	}
	spec, err := ParsePeriod(cc.PeriodFormat, cc.PeriodDay)
	cc.Period = spec
	if err != nil {
		key, msg := ".period_format", err.Error()
		if strings.HasPrefix(msg, "period_day") {
			key = ".period_day"
			if rest, ok := strings.CutPrefix(msg, "period_day is "); ok {
				msg = "is " + rest
			}
		}
		v.addf(p+key, "%s", msg)
	}
}

func (v *validator) mapping(p string, m *MetricMapping, cat kpi.Catalogue) {
	switch {
	case m.ValueColumn == "" && m.ValueExpression == "":
		v.addf(p+".value_column", "is required: the column holding the KPI's value (or compute it with value_expression)")
	case m.ValueColumn != "" && m.ValueExpression != "":
		v.addf(p+".value_expression", "give value_column or value_expression, not both")
	case m.ValueExpression != "":
		if e, err := ParseExpression(m.ValueExpression); err != nil {
			v.addf(p+".value_expression", "%v", err)
		} else {
			m.Expression = e
		}
		if m.Percent {
			v.addf(p+".percent", "is for value_column: in an expression, divide by 100")
		}
		if len(m.ValueMap) > 0 {
			v.addf(p+".value_map", "is for value_column")
		}
	}
	if m.Percent && len(m.ValueMap) > 0 {
		v.addf(p+".value_map", "give percent or value_map, not both")
	}
	if m.Percent && m.KPI != "" && !strings.HasSuffix(m.KPI, "_ratio") {
		v.addf(p+".percent", "turns 14.2 into 0.142, but KPI %s is not a ratio (its name does not end in _ratio)", m.KPI)
	}
	folded := map[string]string{}
	for _, word := range sortedKeys(m.ValueMap) {
		key := strings.ToLower(strings.TrimSpace(word))
		switch {
		case key == "":
			v.addf(p+".value_map", "a word is empty (an empty cell is a missing value)")
		case folded[key] != "":
			v.addf(p+".value_map", "%q and %q are the same word", folded[key], word)
		}
		folded[key] = word
		if x := m.ValueMap[word]; math.IsNaN(x) || math.IsInf(x, 0) {
			v.addf(p+".value_map."+word, "must be a finite number")
		}
	}
	if m.KPI == "" {
		v.addf(p+".kpi", "is required")
		return
	}
	k, ok := cat[m.KPI]
	if !ok {
		v.addf(p+".kpi", "KPI %q is not defined under kpis", m.KPI)
		return
	}
	for _, l := range sortedKeys(m.Labels) {
		if k.LabelIndex(l) < 0 {
			v.addf(p+".labels", "label %q is not one of KPI %s's labels %v", l, k.Name, k.Labels)
		}
		if m.Labels[l] == "" {
			v.addf(p+".labels."+l, "names no column")
		}
	}
	for _, l := range sortedKeys(m.StaticLabels) {
		if strings.TrimSpace(m.StaticLabels[l]) == "" {
			v.addf(p+".static_labels."+l, "is empty: a label value cannot be")
		} else if n := len(m.StaticLabels[l]); n > kpi.MaxLabelValueBytes {
			v.addf(p+".static_labels."+l, "is %d bytes long: a label value is at most %d", n, kpi.MaxLabelValueBytes)
		}
		if k.LabelIndex(l) < 0 {
			v.addf(p+".static_labels", "label %q is not one of KPI %s's labels %v", l, k.Name, k.Labels)
		}
		if _, both := m.Labels[l]; both {
			v.addf(p+".static_labels", "label %q is given both from a column and as a static label", l)
		}
	}
	for _, l := range k.Labels {
		_, fromCol := m.Labels[l]
		_, static := m.StaticLabels[l]
		if !fromCol && !static {
			v.addf(p, "KPI %s's label %q is given no value: map it to a column under labels or fix it under static_labels", k.Name, l)
		}
	}
}
