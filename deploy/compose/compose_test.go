// Package compose_test checks docker-compose.yml, the Dockerfile and the
// files they use, where there is no Docker engine to run them: the Compose
// file is loaded with the Compose specification's own Go library, and the
// addresses the services use to find each other, the files they mount and
// the secrets they need are checked against each other and the repository.
package compose_test

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// root is the repository root, relative to this package.
const root = "../.."

// requiredVariables are the variables docker-compose.yml needs from .env,
// each with the value the tests give it: a value that appears nowhere in
// the repository, so that finding it in the loaded project proves it came
// from the environment.
func requiredVariables() map[string]string {
	return map[string]string{
		"STORE_SUPERUSER_PASSWORD":       "sentinel0store0superuser",
		"CAREWATCH_DB_PASSWORD":          "sentinel0carewatch0db",
		"DEMO_SOURCE_SUPERUSER_PASSWORD": "sentinel0demo0superuser",
		"DEMO_SOURCE_DB_PASSWORD":        "sentinel0demo0source",
		"DEMO_SOURCE_READER_PASSWORD":    "sentinel0demo0reader",
		"GRAFANA_DB_PASSWORD":            "sentinel0grafana0db",
		"GRAFANA_ADMIN_PASSWORD":         "sentinel0grafana0admin",
	}
}

// The services of the stack, by the role they play.
const (
	storeService      = "store"
	demoSourceService = "demo-source"
	carewatchService  = "carewatch"
	prometheusService = "prometheus"
	alertmanagerSvc   = "alertmanager"
	grafanaService    = "grafana"
	teamsRelayService = "teams-relay"
	// What the init scripts (deploy/compose/postgres/initdb) read from a
	// PostgreSQL service's environment: the role that owns the database
	// an application uses, and a read-only role on it.
	ownerUserEnv       = "OWNER_DB_USER"
	ownerPasswordEnv   = "OWNER_DB_PASSWORD"
	ownerDatabaseEnv   = "OWNER_DB_NAME"
	readerUserEnv      = "READER_DB_USER"
	readerPasswordEnv  = "READER_DB_PASSWORD"
	grafanaReaderEnv   = readerUserEnv
	grafanaPasswordEnv = readerPasswordEnv
)

// superuser returns the superuser the postgres image creates for a
// service (POSTGRES_USER, by default postgres).
func superuser(s types.ServiceConfig) string {
	if u := env(s, "POSTGRES_USER"); u != "" {
		return u
	}
	return "postgres"
}

func loadProject(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(abs, "docker-compose.yml")},
		cli.WithWorkingDirectory(abs),
		cli.WithEnv(kv),
		cli.WithName("carewatch"),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return opts.LoadProject(ctx)
}

func mustLoad(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadProject(t, requiredVariables())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func TestComposeLoadsWithTheStack(t *testing.T) {
	p := mustLoad(t)
	want := []string{alertmanagerSvc, carewatchService, demoSourceService, grafanaService, prometheusService, storeService, teamsRelayService}
	got := p.ServiceNames()
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

func TestComposeRefusesToStartWithoutEachPassword(t *testing.T) {
	for name := range requiredVariables() {
		for _, value := range []string{"unset", ""} {
			t.Run(name+" "+map[string]string{"unset": "unset", "": "empty"}[value]+" is refused", func(t *testing.T) {
				vars := requiredVariables()
				if value == "unset" {
					delete(vars, name)
				} else {
					vars[name] = value
				}
				_, err := loadProject(t, vars)
				if err == nil {
					t.Fatalf("docker-compose.yml loads without %s: it must have no default", name)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("the error does not name %s: %v", name, err)
				}
			})
		}
	}
}

// secretKey matches environment variables and URL parts that carry secrets.
var secretKey = regexp.MustCompile(`(?i)pass|secret|token|key`)

func TestComposeHasNoDefaultPasswords(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no variable with a secret has a default", func(t *testing.T) {
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(:?[-=+])`).FindAllStringSubmatch(string(raw), -1) {
			// A *_FILE variable names a file holding a secret, whose
			// default is a placeholder holding none.
			if secretKey.MatchString(m[1]) && !strings.HasSuffix(m[1], "_FILE") {
				t.Errorf("${%s%s...} gives a secret a default: use ${%s:?...}", m[1], m[2], m[1])
			}
		}
	})
	sentinels := requiredVariables()
	fromEnv := func(v string) bool {
		for _, s := range sentinels {
			if v == s {
				return true
			}
		}
		return false
	}
	p := mustLoad(t)
	for _, s := range p.Services {
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			t.Run(s.Name+" "+k+" comes from the environment", func(t *testing.T) {
				if secretKey.MatchString(k) && !strings.HasSuffix(k, "_USER") && !fromEnv(*v) {
					t.Errorf("%s: %s is set in the file, not from .env", s.Name, k)
				}
				if u, err := url.Parse(*v); err == nil && u.User != nil {
					if pw, ok := u.User.Password(); !ok || !fromEnv(pw) {
						t.Errorf("%s: %s carries a password that does not come from .env", s.Name, k)
					}
				}
			})
		}
	}
}

func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9_]+):\?`).FindAllStringSubmatch(string(raw), -1) {
		required[m[1]] = true
	}
	// Optional variables have a default in docker-compose.yml; .env.example
	// shows them commented out, so that a copy of it leaves them unset.
	optional := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9_]+):-`).FindAllStringSubmatch(string(raw), -1) {
		optional[m[1]] = true
	}
	commentedOut := regexp.MustCompile(`^#\s*([A-Z][A-Z0-9_]*)=`)
	documented := map[string]string{}
	documentedOff := map[string]bool{}
	f, err := os.Open(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := commentedOut.FindStringSubmatch(line); m != nil {
			documentedOff[m[1]] = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		documented[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := requiredVariables()
	for k := range required {
		if _, ok := want[k]; !ok {
			t.Errorf("docker-compose.yml requires %s, which this test does not know: add it to requiredVariables", k)
		}
		if _, ok := documented[k]; !ok {
			t.Errorf("docker-compose.yml requires %s, which .env.example does not document", k)
		}
	}
	for k := range optional {
		if required[k] {
			t.Errorf("docker-compose.yml both requires %s and gives it a default", k)
		}
		if !documentedOff[k] {
			t.Errorf("docker-compose.yml reads the optional %s, which .env.example does not show as a commented-out # %s=...", k, k)
		}
	}
	for k := range documentedOff {
		if !optional[k] {
			t.Errorf(".env.example shows # %s=..., which is not an optional variable of docker-compose.yml", k)
		}
	}
	for k, v := range documented {
		if !required[k] {
			t.Errorf(".env.example documents %s, which docker-compose.yml does not require (an optional one is shown commented out)", k)
		}
		if secretKey.MatchString(k) && v != "" {
			t.Errorf(".env.example gives %s a value: leave passwords empty so that each stack gets its own", k)
		}
	}
}

// repoPath returns the path of a bind mount's source relative to the
// repository root, failing if it lies outside the repository.
func repoPath(t *testing.T, source string) string {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(abs, source)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		t.Fatalf("bind mount %s lies outside the repository", source)
	}
	return rel
}

func TestComposeMountsFilesOfTheRepository(t *testing.T) {
	p := mustLoad(t)
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				t.Run(s.Name+" mounts "+v.Target+" from the repository, read-only", func(t *testing.T) {
					rel := repoPath(t, v.Source)
					if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
						t.Errorf("%s mounts %s, which is not in the repository: %v", s.Name, rel, err)
					}
					if !v.ReadOnly {
						t.Errorf("%s mounts %s read-write: configuration is mounted :ro", s.Name, rel)
					}
				})
			case types.VolumeTypeVolume:
				t.Run(s.Name+" keeps "+v.Target+" in a declared named volume", func(t *testing.T) {
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("%s uses volume %q, which is not declared", s.Name, v.Source)
					}
				})
			default:
				t.Errorf("%s: volume %s of type %s", s.Name, v.Target, v.Type)
			}
		}
	}
	for _, name := range []string{storeService, demoSourceService, prometheusService, alertmanagerSvc, grafanaService} {
		t.Run(name+" keeps its data in a named volume", func(t *testing.T) {
			s := service(t, p, name)
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume }) {
				t.Errorf("%s has no named volume: its data would not survive the container", name)
			}
		})
	}
	for _, s := range p.Services {
		for _, sec := range s.Secrets {
			t.Run(s.Name+" reads secret "+sec.Source+" from a file that exists", func(t *testing.T) {
				decl, ok := p.Secrets[sec.Source]
				if !ok {
					t.Fatalf("%s uses secret %q, which is not declared", s.Name, sec.Source)
				}
				if decl.File == "" {
					t.Fatalf("secret %s is not read from a file", sec.Source)
				}
				// Without .env the file is the repository's placeholder.
				if _, err := os.Stat(filepath.Join(root, repoPath(t, decl.File))); err != nil {
					t.Errorf("secret %s: %v", sec.Source, err)
				}
			})
		}
	}
	stages := readDockerfile(t)
	for _, name := range []string{carewatchService, teamsRelayService} {
		t.Run(name+" is built from the repository's Dockerfile", func(t *testing.T) {
			s := service(t, p, name)
			if s.Build == nil {
				t.Fatalf("%s has no build section", name)
			}
			if _, err := os.Stat(filepath.Join(root, repoPath(t, s.Build.Context), s.Build.Dockerfile)); err != nil {
				t.Errorf("%s's Dockerfile: %v", name, err)
			}
			if s.Build.Target != "" && !slices.ContainsFunc(stages, func(st stage) bool { return st.name == s.Build.Target }) {
				t.Errorf("%s builds target %q, which the Dockerfile has no stage for", name, s.Build.Target)
			}
		})
	}
	t.Run("each service built from the Dockerfile has an image of its own", func(t *testing.T) {
		images := map[string]string{}
		for _, s := range p.Services {
			if s.Build == nil {
				continue
			}
			if other, ok := images[s.Image]; ok {
				t.Errorf("%s and %s both build image %q", other, s.Name, s.Image)
			}
			images[s.Image] = s.Name
		}
	})
}

// TestComposeTeamsPlaceholderHoldsNoWebhook checks what the relay reads
// when no URL file is given: a URL the relay accepts, so that it starts,
// on a host that can never resolve (RFC 2606's .invalid), so that the
// repository ships no channel's webhook.
func TestComposeTeamsPlaceholderHoldsNoWebhook(t *testing.T) {
	p := mustLoad(t)
	for _, sec := range service(t, p, teamsRelayService).Secrets {
		t.Run(sec.Source+" is a URL on an .invalid host", func(t *testing.T) {
			data, err := os.ReadFile(p.Secrets[sec.Source].File)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(strings.TrimSpace(string(data)))
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				t.Fatalf("%q is not an http(s) URL: the relay would refuse to start", data)
			}
			if !strings.HasSuffix(u.Hostname(), ".invalid") {
				t.Errorf("the placeholder names host %s: it must be a host under .invalid, never a real webhook", u.Hostname())
			}
		})
	}
}

// mountedFiles returns the files matching pattern in the directory of the
// repository that s mounts at containerDir, and fails the test when none is
// mounted there or it holds none; what names them in the failure.
func mountedFiles(t *testing.T, s types.ServiceConfig, containerDir, pattern, what string) []string {
	t.Helper()
	dir, ok := hostFile(t, s, containerDir)
	if !ok {
		t.Fatalf("%s: nothing is mounted at %s", what, containerDir)
	}
	files, _ := filepath.Glob(filepath.Join(root, dir, pattern))
	if len(files) == 0 {
		t.Fatalf("%s: no %s in %s", what, pattern, dir)
	}
	return files
}

// hostFile maps a path inside a service's container back to the repository
// file that a bind mount puts there; ok is false if no bind mount covers it.
func hostFile(t *testing.T, s types.ServiceConfig, containerPath string) (string, bool) {
	t.Helper()
	best := ""
	rel := ""
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if containerPath == v.Target || strings.HasPrefix(containerPath, strings.TrimSuffix(v.Target, "/")+"/") {
			if len(v.Target) > len(best) {
				best = v.Target
				rel = filepath.Join(repoPath(t, v.Source), strings.TrimPrefix(containerPath, v.Target))
			}
		}
	}
	return rel, best != ""
}

// flagValue returns the value of --name=value in a command.
func flagValue(cmd []string, name string) string {
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(cmd) {
			return cmd[i+1]
		}
	}
	return ""
}

// flagValues returns every value of a repeatable --name=value in a command.
func flagValues(cmd []string, name string) []string {
	var out []string
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
		if a == "--"+name && i+1 < len(cmd) {
			out = append(out, cmd[i+1])
		}
	}
	return out
}

// relayChannels maps each channel of the relay's command ("" for the
// default one, POST /alerts) to the file holding its webhook URL, parsed
// as carewatch-teams parses --teams.webhook-url-file=[NAME=]FILE.
func relayChannels(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	name := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	channels := map[string]string{}
	for _, v := range flagValues(s.Command, "teams.webhook-url-file") {
		channel, file := "", v
		if before, after, ok := strings.Cut(v, "="); ok && name.MatchString(before) {
			channel, file = before, after
		}
		if _, dup := channels[channel]; dup {
			t.Errorf("%s: more than one --teams.webhook-url-file for channel %q", s.Name, channel)
		}
		channels[channel] = file
	}
	return channels
}

// secretPath is where Compose puts a service's secret in its container.
func secretPath(s types.ServiceSecretConfig) string {
	switch {
	case s.Target == "":
		return "/run/secrets/" + s.Source
	case path.IsAbs(s.Target):
		return s.Target
	default:
		return "/run/secrets/" + s.Target
	}
}

// exposes reports whether service s listens on port inside the network.
func exposes(s types.ServiceConfig, port string) bool {
	if slices.Contains([]string(s.Expose), port) {
		return true
	}
	return slices.ContainsFunc(s.Ports, func(p types.ServicePortConfig) bool { return strconv.Itoa(int(p.Target)) == port })
}

// reachable checks that host:port names a service of p that exposes port.
func reachable(t *testing.T, p *types.Project, what, hostport string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q is not host:port: %v", what, hostport, err)
		return
	}
	s, ok := p.Services[host]
	if !ok {
		t.Errorf("%s: %s is not a service of docker-compose.yml", what, host)
		return
	}
	if !exposes(s, port) {
		t.Errorf("%s: service %s does not expose port %s (expose: %v)", what, host, port, s.Expose)
	}
}

func listenPort(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	addr := flagValue(s.Command, "web.listen-address")
	if addr == "" {
		t.Fatalf("%s's command sets no --web.listen-address", s.Name)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: --web.listen-address=%s: %v", s.Name, addr, err)
	}
	return port
}

func TestComposeServicesFindEachOther(t *testing.T) {
	p := mustLoad(t)

	t.Run("each service exposes the port it listens on, and its health check asks that port", func(t *testing.T) {
		for _, name := range []string{carewatchService, prometheusService, alertmanagerSvc, teamsRelayService} {
			s := service(t, p, name)
			port := listenPort(t, s)
			if !exposes(s, port) {
				t.Errorf("%s listens on %s but does not expose it", name, port)
			}
			if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":"+port+"/") {
				t.Errorf("%s's health check does not ask port %s", name, port)
			}
		}
	})

	t.Run("every service has a health check", func(t *testing.T) {
		for _, s := range p.Services {
			if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable {
				t.Errorf("%s has no health check", s.Name)
			}
		}
	})

	t.Run("a dependency waited on for health has a health check", func(t *testing.T) {
		for _, s := range p.Services {
			for dep, d := range s.DependsOn {
				if d.Condition == types.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no health check", s.Name, dep)
				}
			}
		}
	})

	t.Run("published ports listen on the loopback address only", func(t *testing.T) {
		for _, s := range p.Services {
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %d on %q: publish on 127.0.0.1", s.Name, port.Target, port.HostIP)
				}
			}
		}
	})

	t.Run("connection URLs name services and their ports", func(t *testing.T) {
		for _, s := range p.Services {
			for k, v := range s.Environment {
				if v == nil {
					continue
				}
				u, err := url.Parse(*v)
				if err != nil || u.Host == "" || !strings.Contains(*v, "://") {
					continue
				}
				reachable(t, p, s.Name+" "+k, u.Host)
			}
		}
	})

	t.Run("carewatch's store is the store service's database, as its owner, not the superuser", func(t *testing.T) {
		cw, st := service(t, p, carewatchService), service(t, p, storeService)
		checkRoleURL(t, p, cw, "CAREWATCH_DATABASE_URL", st, ownerUserEnv, ownerPasswordEnv)
	})

	t.Run("carewatch-demo writes the demo council as its owner and carewatch reads it as the read-only role", func(t *testing.T) {
		cw, src := service(t, p, carewatchService), service(t, p, demoSourceService)
		checkRoleURL(t, p, cw, "CAREWATCH_DEMO_SOURCE_URL", src, ownerUserEnv, ownerPasswordEnv)
		checkRoleURL(t, p, cw, "CAREWATCH_DEMO_SOURCE_READER_URL", src, readerUserEnv, readerPasswordEnv)
	})

	t.Run("prometheus scrapes carewatch and sends alerts to alertmanager", func(t *testing.T) {
		prom := service(t, p, prometheusService)
		cfgPath := flagValue(prom.Command, "config.file")
		file, ok := hostFile(t, prom, cfgPath)
		if !ok {
			t.Fatalf("prometheus's --config.file=%s is not mounted from the repository", cfgPath)
		}
		cfg := readPrometheusConfig(t, filepath.Join(root, file))
		carewatch := carewatchService + ":" + listenPort(t, service(t, p, carewatchService))
		am := alertmanagerSvc + ":" + listenPort(t, service(t, p, alertmanagerSvc))
		var scrapesCarewatch bool
		for _, sc := range cfg.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				for _, target := range st.Targets {
					reachable(t, p, "prometheus scrape job "+sc.JobName, target)
					scrapesCarewatch = scrapesCarewatch || target == carewatch
				}
			}
		}
		if !scrapesCarewatch {
			t.Errorf("prometheus.yml does not scrape %s", carewatch)
		}
		var alertsTo bool
		for _, a := range cfg.Alerting.Alertmanagers {
			for _, st := range a.StaticConfigs {
				for _, target := range st.Targets {
					reachable(t, p, "prometheus alerting", target)
					alertsTo = alertsTo || target == am
				}
			}
		}
		if !alertsTo {
			t.Errorf("prometheus.yml does not send alerts to %s", am)
		}
		if len(cfg.RuleFiles) == 0 {
			t.Error("prometheus.yml loads no rule files")
		}
		for _, pattern := range cfg.RuleFiles {
			inContainer := pattern
			if !path.IsAbs(pattern) {
				inContainer = path.Join(path.Dir(cfgPath), pattern)
			}
			hostPattern, ok := hostFile(t, prom, inContainer)
			if !ok {
				t.Errorf("rule files %s are not mounted into prometheus", inContainer)
				continue
			}
			matches, err := filepath.Glob(filepath.Join(root, hostPattern))
			if err != nil || len(matches) == 0 {
				t.Errorf("rule files %s (%s in the repository) match nothing", pattern, hostPattern)
			}
		}
	})

	t.Run("alertmanager's configuration is mounted where its command reads it", func(t *testing.T) {
		am := service(t, p, alertmanagerSvc)
		cfgPath := flagValue(am.Command, "config.file")
		file, ok := hostFile(t, am, cfgPath)
		if !ok {
			t.Fatalf("alertmanager's --config.file is not mounted from the repository")
		}
		var cfg alertmanagerConfig
		readYAML(t, filepath.Join(root, file), &cfg)
		if len(cfg.Templates) == 0 {
			t.Error("alertmanager's configuration loads no templates")
		}
		for _, pattern := range cfg.Templates {
			inContainer := pattern
			if !path.IsAbs(pattern) {
				inContainer = path.Join(path.Dir(cfgPath), pattern)
			}
			hostPattern, ok := hostFile(t, am, inContainer)
			if !ok {
				t.Errorf("templates %s are not mounted into alertmanager", inContainer)
				continue
			}
			if m, err := filepath.Glob(filepath.Join(root, hostPattern)); err != nil || len(m) == 0 {
				t.Errorf("templates %s (%s in the repository) match nothing", pattern, hostPattern)
			}
		}
	})

	t.Run("alertmanager's Teams webhooks post to channels the relay serves", func(t *testing.T) {
		am, relay := service(t, p, alertmanagerSvc), service(t, p, teamsRelayService)
		var cfg alertmanagerConfig
		readYAML(t, filepath.Join(root, mustHostFile(t, am, flagValue(am.Command, "config.file"))), &cfg)
		channels := relayChannels(t, relay)
		want := teamsRelayService + ":" + listenPort(t, relay)
		var n int
		for _, r := range cfg.Receivers {
			for _, w := range r.WebhookConfigs {
				n++
				u, err := url.Parse(w.URL)
				if err != nil {
					t.Errorf("receiver %s: webhook %q: %v", r.Name, w.URL, err)
					continue
				}
				reachable(t, p, "alertmanager receiver "+r.Name, u.Host)
				if u.Host != want {
					t.Errorf("receiver %s posts to %s, not the relay on %s", r.Name, u.Host, want)
				}
				if u.Path == "/watchdog" {
					// The relay's dead man's switch, not a channel.
					if flagValue(relay.Command, "watchdog.channel") == "" {
						t.Errorf("receiver %s posts the Watchdog to the relay, which runs without --watchdog.channel", r.Name)
					}
					continue
				}
				channel, ok := strings.CutPrefix(u.Path, "/alerts")
				channel = strings.TrimPrefix(channel, "/")
				if !ok || strings.Contains(channel, "/") {
					t.Errorf("receiver %s posts to %s, which is not /alerts or /alerts/CHANNEL", r.Name, u.Path)
					continue
				}
				if _, ok := channels[channel]; !ok {
					t.Errorf("receiver %s posts to channel %q, which the relay does not serve (it serves %v)", r.Name, channel, slices.Sorted(maps.Keys(channels)))
				}
			}
		}
		if n == 0 {
			t.Error("alertmanager's configuration has no webhook to the relay")
		}
	})

	t.Run("each of the relay's URL files is a secret mounted into it", func(t *testing.T) {
		relay := service(t, p, teamsRelayService)
		mounted := map[string]string{}
		for _, sec := range relay.Secrets {
			mounted[secretPath(sec)] = sec.Source
		}
		channels := relayChannels(t, relay)
		if len(channels) == 0 {
			t.Fatal("the relay's command gives no --teams.webhook-url-file")
		}
		for channel, file := range channels {
			if _, ok := mounted[file]; !ok {
				t.Errorf("channel %q reads %s, which no secret of the relay mounts (mounted: %v)", channel, file, mounted)
			}
		}
	})

	t.Run("grafana's datasources are the prometheus and store services", func(t *testing.T) {
		g, st := service(t, p, grafanaService), service(t, p, storeService)
		files := mountedFiles(t, g, "/etc/grafana/provisioning/datasources", "*.yml", "grafana's datasource provisioning")
		promPort := listenPort(t, service(t, p, prometheusService))
		var sawProm, sawStore bool
		for _, f := range files {
			for _, ds := range readDatasources(t, f) {
				switch ds.Type {
				case "prometheus":
					sawProm = true
					u, err := url.Parse(ds.URL)
					if err != nil {
						t.Fatal(err)
					}
					reachable(t, p, "datasource "+ds.UID, u.Host)
					if u.Host != prometheusService+":"+promPort {
						t.Errorf("datasource %s points at %s, not the prometheus service on %s", ds.UID, u.Host, promPort)
					}
					want := readPrometheusConfig(t, filepath.Join(root, mustHostFile(t, service(t, p, prometheusService), flagValue(service(t, p, prometheusService).Command, "config.file")))).Global.ScrapeInterval
					if ds.JSONData["timeInterval"] != want {
						t.Errorf("datasource %s: timeInterval %v, want Prometheus's scrape_interval %q", ds.UID, ds.JSONData["timeInterval"], want)
					}
				case "grafana-postgresql-datasource", "postgres":
					sawStore = true
					reachable(t, p, "datasource "+ds.UID, ds.URL)
					host, _, _ := net.SplitHostPort(ds.URL)
					if host != storeService {
						t.Errorf("datasource %s points at %s, not the store", ds.UID, ds.URL)
					}
					if ds.JSONData["database"] != env(st, ownerDatabaseEnv) {
						t.Errorf("datasource %s reads database %v, want the store's %s", ds.UID, ds.JSONData["database"], env(st, ownerDatabaseEnv))
					}
					if ds.User != env(st, grafanaReaderEnv) || ds.User == env(st, ownerUserEnv) || ds.User == superuser(st) {
						t.Errorf("datasource %s logs in as %q, want the read-only role %q", ds.UID, ds.User, env(st, grafanaReaderEnv))
					}
					pw := ds.SecureJSONData["password"]
					name := strings.Trim(strings.TrimPrefix(pw, "$"), "{}")
					if !strings.HasPrefix(pw, "$") || env(g, name) == "" {
						t.Errorf("datasource %s's password %q is not an environment variable grafana has", ds.UID, pw)
					} else if env(g, name) != env(st, grafanaPasswordEnv) {
						t.Errorf("grafana's %s is not the password the store gives the read-only role", name)
					}
				default:
					t.Errorf("datasource %s has unexpected type %s", ds.UID, ds.Type)
				}
			}
		}
		if !sawProm || !sawStore {
			t.Errorf("datasources: prometheus %v, store %v; want both", sawProm, sawStore)
		}
	})

	t.Run("grafana loads the dashboards from where the provider looks", func(t *testing.T) {
		g := service(t, p, grafanaService)
		files := mountedFiles(t, g, "/etc/grafana/provisioning/dashboards", "*.yml", "grafana's dashboard provisioning")
		for _, f := range files {
			var cfg struct {
				Providers []struct {
					Options struct {
						Path string `yaml:"path"`
					} `yaml:"options"`
				} `yaml:"providers"`
			}
			readYAML(t, f, &cfg)
			for _, pr := range cfg.Providers {
				hostDir, ok := hostFile(t, g, pr.Options.Path)
				if !ok {
					t.Errorf("dashboard provider path %s is not mounted", pr.Options.Path)
					continue
				}
				if m, _ := filepath.Glob(filepath.Join(root, hostDir, "*.json")); len(m) == 0 {
					t.Errorf("dashboard provider path %s (%s) holds no dashboard", pr.Options.Path, hostDir)
				}
			}
		}
		home := env(g, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
		if f, ok := hostFile(t, g, home); !ok {
			t.Errorf("the home dashboard %s is not mounted", home)
		} else if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the home dashboard: %v", err)
		}
	})

	for _, name := range []string{storeService, demoSourceService} {
		t.Run(name+"'s init scripts are mounted and find what they read in its environment", func(t *testing.T) {
			st := service(t, p, name)
			scripts := mountedFiles(t, st, "/docker-entrypoint-initdb.d", "*.sh", name+"'s init scripts")
			for _, f := range scripts {
				// The image sources a script that is not executable,
				// where $0 no longer names it.
				if fi, err := os.Stat(f); err != nil || fi.Mode().Perm()&0o111 != 0o111 {
					t.Errorf("%s is not executable by all: %v", filepath.Base(f), err)
				}
				text, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(text), -1) {
					if strings.HasPrefix(m[1], "POSTGRES_") {
						continue // the image's own
					}
					if env(st, m[1]) == "" {
						t.Errorf("%s reads %s, which %s does not set", filepath.Base(f), m[1], name)
					}
				}
			}
			for _, k := range []string{ownerUserEnv, readerUserEnv} {
				if env(st, k) == superuser(st) {
					t.Errorf("%s: %s is the superuser %s", name, k, superuser(st))
				}
			}
		})
	}
}

// checkRoleURL checks that the connection URL in variable key of service s
// logs in to the database that db's init scripts create, as the role its
// variable userEnv names, with the password of passwordEnv: never as the
// superuser.
func checkRoleURL(t *testing.T, p *types.Project, s types.ServiceConfig, key string, db types.ServiceConfig, userEnv, passwordEnv string) {
	t.Helper()
	raw := env(s, key)
	if raw == "" {
		t.Errorf("%s does not set %s", s.Name, key)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return
	}
	if u.Hostname() != db.Name || strings.TrimPrefix(u.Path, "/") != env(db, ownerDatabaseEnv) || u.User.Username() != env(db, userEnv) {
		t.Errorf("%s = %s, want %s's database %s as %s", key, u.Redacted(), db.Name, env(db, ownerDatabaseEnv), env(db, userEnv))
	}
	if u.User.Username() == superuser(db) {
		t.Errorf("%s logs in as %s's superuser", key, db.Name)
	}
	if pw, _ := u.User.Password(); pw != env(db, passwordEnv) {
		t.Errorf("%s's password is not %s's %s", key, db.Name, passwordEnv)
	}
}

// TestComposePrometheusIsTheCouncilsWithServiceAddresses keeps the Compose
// stack's Prometheus configuration the same as the council's
// (deploy/prometheus/prometheus.yml) in everything but the addresses of
// the programs it talks to, which are Compose services here and localhost
// there.
func TestComposePrometheusIsTheCouncilsWithServiceAddresses(t *testing.T) {
	read := func(file string) map[string]any {
		var m map[string]any
		readYAML(t, filepath.Join(root, file), &m)
		// Blank every target: the addresses are the one thing that differs.
		for _, key := range []string{"scrape_configs", "alerting"} {
			blankTargets(m[key])
		}
		return m
	}
	council, compose := read("deploy/prometheus/prometheus.yml"), read("deploy/compose/prometheus/prometheus.yml")
	if !reflect.DeepEqual(council, compose) {
		a, _ := yaml.Marshal(council)
		b, _ := yaml.Marshal(compose)
		t.Errorf("the Compose Prometheus configuration differs from the council's in more than addresses:\ncouncil:\n%s\ncompose:\n%s", a, b)
	}
}

// update rewrites the generated files instead of comparing them.
var update = flag.Bool("update", false, "rewrite deploy/compose/alertmanager/alertmanager.yml from deploy/alertmanager/alertmanager.yml")

const (
	councilAlertmanager = "deploy/alertmanager/alertmanager.yml"
	composeAlertmanager = "deploy/compose/alertmanager/alertmanager.yml"
	// relayInCouncil is where the council's Alertmanager finds the relay:
	// beside it, on the relay's loopback default.
	relayInCouncil = "http://127.0.0.1:9840/"
)

// composeAlertmanagerFrom makes the Compose stack's Alertmanager
// configuration from the council's: the same file, its Teams webhooks
// posting to relay (the teams-relay service) instead of 127.0.0.1.
func composeAlertmanagerFrom(council []byte, relay string) []byte {
	header := "# Generated from " + councilAlertmanager + " by\n" +
		"#   go test ./deploy/compose -run TestComposeAlertmanager -update\n" +
		"# Do not edit: edit that file and run the command again. The one\n" +
		"# difference: the Teams webhooks post to the teams-relay service of\n" +
		"# docker-compose.yml, not to " + relayInCouncil + ".\n#\n"
	return []byte(header + strings.ReplaceAll(string(council), relayInCouncil, relay))
}

// TestComposeAlertmanagerIsTheCouncilsWithTheRelaysAddress keeps the
// Compose stack's Alertmanager configuration the council's routing
// (deploy/alertmanager/alertmanager.yml) in everything but the address of
// the Teams relay, which is a Compose service here and 127.0.0.1 there.
func TestComposeAlertmanagerIsTheCouncilsWithTheRelaysAddress(t *testing.T) {
	p := mustLoad(t)
	relay := "http://" + teamsRelayService + ":" + listenPort(t, service(t, p, teamsRelayService)) + "/"
	council, err := os.ReadFile(filepath.Join(root, councilAlertmanager))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(council), relayInCouncil) {
		t.Fatalf("%s no longer posts to the relay at %s: change relayInCouncil to where it does", councilAlertmanager, relayInCouncil)
	}
	want := composeAlertmanagerFrom(council, relay)
	if *update {
		if err := os.WriteFile(filepath.Join(root, composeAlertmanager), want, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the file is the one generated from the council's", func(t *testing.T) {
		got, err := os.ReadFile(filepath.Join(root, composeAlertmanager))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is not what %s generates: run go test ./deploy/compose -run TestComposeAlertmanager -update", composeAlertmanager, councilAlertmanager)
		}
	})

	t.Run("it differs from the council's in the webhook URLs only, each posting to the relay service", func(t *testing.T) {
		var c, k map[string]any
		readYAML(t, filepath.Join(root, councilAlertmanager), &c)
		readYAML(t, filepath.Join(root, composeAlertmanager), &k)
		cu, ku := takeWebhookURLs(c), takeWebhookURLs(k)
		if !reflect.DeepEqual(c, k) {
			a, _ := yaml.Marshal(c)
			b, _ := yaml.Marshal(k)
			t.Errorf("the Compose Alertmanager configuration differs from the council's in more than webhook URLs:\ncouncil:\n%s\ncompose:\n%s", a, b)
		}
		if len(cu) == 0 || len(cu) != len(ku) {
			t.Fatalf("webhook URLs: council %v, compose %v", cu, ku)
		}
		for i := range cu {
			if rest, ok := strings.CutPrefix(cu[i], relayInCouncil); !ok || ku[i] != relay+rest {
				t.Errorf("webhook %d: council %s, compose %s; want the council's path on %s", i, cu[i], ku[i], relay)
			}
		}
	})
}

// takeWebhookURLs blanks the url of every webhook_configs entry under v
// and returns them in the order met (maps visited in sorted key order).
func takeWebhookURLs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if k == "webhook_configs" {
				if l, ok := x[k].([]any); ok {
					for _, w := range l {
						if m, ok := w.(map[string]any); ok {
							if u, ok := m["url"].(string); ok {
								out = append(out, u)
								m["url"] = ""
							}
						}
					}
					continue
				}
			}
			out = append(out, takeWebhookURLs(x[k])...)
		}
	case []any:
		for _, c := range x {
			out = append(out, takeWebhookURLs(c)...)
		}
	}
	return out
}

// blankTargets replaces every list of targets under v with its length.
func blankTargets(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "targets" {
				if l, ok := c.([]any); ok {
					x[k] = len(l)
					continue
				}
			}
			blankTargets(c)
		}
	case []any:
		for _, c := range x {
			blankTargets(c)
		}
	}
}

func mustHostFile(t *testing.T, s types.ServiceConfig, containerPath string) string {
	t.Helper()
	f, ok := hostFile(t, s, containerPath)
	if !ok {
		t.Fatalf("%s: %s is not mounted", s.Name, containerPath)
	}
	return f
}

type prometheusConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
	Alerting struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
}

type alertmanagerConfig struct {
	Templates []string `yaml:"templates"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL string `yaml:"url"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
}

func readPrometheusConfig(t *testing.T, file string) prometheusConfig {
	t.Helper()
	var cfg prometheusConfig
	readYAML(t, file, &cfg)
	return cfg
}

type datasource struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	URL            string            `yaml:"url"`
	User           string            `yaml:"user"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

func readDatasources(t *testing.T, file string) []datasource {
	t.Helper()
	var cfg struct {
		Datasources []datasource `yaml:"datasources"`
	}
	readYAML(t, file, &cfg)
	return cfg.Datasources
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// dockerfile is the part of the Dockerfile the tests read: its stages and
// their instructions, continuation lines joined.
type stage struct {
	from, name   string
	instructions [][2]string // keyword (upper case), arguments
}

func readDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var logical strings.Builder
	flush := func() {
		line := strings.TrimSpace(logical.String())
		logical.Reset()
		if line == "" {
			return
		}
		kw, args, _ := strings.Cut(line, " ")
		kw = strings.ToUpper(kw)
		args = strings.TrimSpace(args)
		if kw == "FROM" {
			f := strings.Fields(args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", kw)
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, [2]string{kw, args})
	}
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			logical.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		logical.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stage(s), want a build stage and a run stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	for _, pkg := range []string{"./cmd/carewatch", "./cmd/carewatch-demo", "./cmd/carewatch-teams"} {
		t.Run("the build stage builds "+pkg+" without cgo", func(t *testing.T) {
			var ok bool
			for _, in := range build.instructions {
				if in[0] == "RUN" && strings.Contains(in[1], "go build") && strings.Contains(in[1], "CGO_ENABLED=0") && slices.Contains(strings.Fields(in[1]), pkg) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("no RUN CGO_ENABLED=0 go build ... %s in the build stage", pkg)
			}
		})
	}

	unprivileged := func(t *testing.T, st stage) {
		t.Helper()
		user := ""
		for _, in := range st.instructions {
			if in[0] == "USER" {
				user = in[1]
			}
		}
		uid, _, _ := strings.Cut(user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("stage %s: USER %q: want a numeric, non-zero uid (Kubernetes' runAsNonRoot can only check a number)", st.name, user)
		}
	}
	t.Run("the run stage runs as an unprivileged user", func(t *testing.T) { unprivileged(t, final) })

	p := mustLoad(t)
	t.Run("the carewatch service builds the run stage", func(t *testing.T) {
		if target := service(t, p, carewatchService).Build.Target; target != "" && target != final.name {
			t.Errorf("the carewatch service builds target %q, not the run stage %q", target, final.name)
		}
	})

	t.Run("the relay's target runs carewatch-teams as an unprivileged user on the port the service listens on", func(t *testing.T) {
		relay := service(t, p, teamsRelayService)
		i := slices.IndexFunc(stages, func(st stage) bool { return st.name == relay.Build.Target })
		if relay.Build.Target == "" || i < 0 {
			t.Fatalf("the teams-relay service builds target %q, which is not a stage of the Dockerfile", relay.Build.Target)
		}
		st := stages[i]
		unprivileged(t, st)
		var entrypoint, copied string
		var exposed []string
		for _, in := range st.instructions {
			switch in[0] {
			case "ENTRYPOINT":
				entrypoint = in[1]
			case "COPY":
				if strings.HasPrefix(in[1], "--from="+build.name+" ") {
					copied = in[1]
				}
			case "EXPOSE":
				exposed = append(exposed, strings.Fields(in[1])...)
			}
		}
		if !strings.Contains(entrypoint, "carewatch-teams") {
			t.Errorf("stage %s: ENTRYPOINT %s does not run carewatch-teams", st.name, entrypoint)
		}
		if !strings.Contains(copied, "/carewatch-teams") {
			t.Errorf("stage %s does not copy carewatch-teams from the build stage", st.name)
		}
		if port := listenPort(t, relay); !slices.Contains(exposed, port) {
			t.Errorf("stage %s exposes %v, not the relay's port %s", st.name, exposed, port)
		}
	})

	var workdir string
	copies := map[string]string{} // destination in the image -> source in the repository
	for _, in := range final.instructions {
		switch in[0] {
		case "WORKDIR":
			workdir = in[1]
		case "COPY":
			f := strings.Fields(in[1])
			if strings.HasPrefix(f[0], "--from=") {
				continue
			}
			copies[f[len(f)-1]] = f[0]
		}
	}

	t.Run("what the run stage copies from the repository exists and is not ignored", func(t *testing.T) {
		ignored := readDockerignore(t)
		for dst, src := range copies {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s %s: %v", src, dst, err)
			}
			if pat, ok := ignoredBy(ignored, strings.TrimSuffix(src, "/")); ok {
				t.Errorf("COPY %s: .dockerignore leaves it out (%s)", src, pat)
			}
		}
		for _, need := range []string{"go.mod", "go.sum", "cmd/carewatch/main.go", "examples/demo/carewatch.yml", "store/migrations/0001_init.sql"} {
			if pat, ok := ignoredBy(ignored, need); ok {
				t.Errorf(".dockerignore leaves out %s, which the build needs (%s)", need, pat)
			}
		}
	})

	t.Run("the compose demo's configuration is in the image where its command looks", func(t *testing.T) {
		cw := service(t, p, carewatchService)
		cfg := flagValue(cw.Command, "config.file")
		if cfg == "" {
			t.Fatal("the carewatch service's command has no --config.file")
		}
		inImage := cfg
		if !path.IsAbs(cfg) {
			inImage = path.Join(workdir, cfg)
		}
		var found bool
		for dst, src := range copies {
			dst = strings.TrimSuffix(dst, "/")
			if rest, ok := strings.CutPrefix(inImage, dst+"/"); ok {
				if _, err := os.Stat(filepath.Join(root, src, rest)); err == nil {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("--config.file=%s (%s in the image) is not copied into the image", cfg, inImage)
		}
	})

	for _, pkg := range []string{"./cmd/carewatch", "./cmd/carewatch-demo", "./cmd/carewatch-teams"} {
		t.Run("the build command yields a static "+pkg, func(t *testing.T) {
			f, err := elf.Open(buildStatic(t, pkg, dockerfileLDFlags(t, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("the binary asks for a dynamic loader: it would not run on an image without the build's libc")
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("the binary links %v", libs)
			}
		})
	}
}

// buildStatic builds pkg as the Dockerfile does, with the -ldflags given
// (dockerfileLDFlags), and returns the binary.
func buildStatic(t *testing.T, pkg, ldflags string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not in PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestComposeTeamsRelayStartsWithoutAWebhook runs carewatch-teams with the
// teams-relay service's command, each secret replaced by the file Compose
// mounts when .env gives none: the relay must come up healthy and ready,
// so that the stack runs with Teams left off.
func TestComposeTeamsRelayStartsWithoutAWebhook(t *testing.T) {
	p := mustLoad(t)
	relay := service(t, p, teamsRelayService)
	files := map[string]string{} // path in the container -> file on this machine
	for _, sec := range relay.Secrets {
		files[secretPath(sec)] = p.Secrets[sec.Source].File
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var args []string
	for _, a := range relay.Command {
		switch {
		case strings.HasPrefix(a, "--web.listen-address="):
			a = "--web.listen-address=" + addr
		case strings.HasPrefix(a, "--teams.webhook-url-file="):
			spec := strings.TrimPrefix(a, "--teams.webhook-url-file=")
			name, file, ok := strings.Cut(spec, "=")
			if !ok {
				name, file = "", spec
			}
			host, mounted := files[file]
			if !mounted {
				t.Fatalf("%s reads %s, which no secret mounts", a, file)
			}
			if name != "" {
				host = name + "=" + host
			}
			a = "--teams.webhook-url-file=" + host
		}
		args = append(args, a)
	}

	bin := buildStatic(t, "./cmd/carewatch-teams", dockerfileLDFlags(t, nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the relay has exited, with waitErr set.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cancel()
		<-exited
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for _, endpoint := range []string{"/-/healthy", "/-/ready"} {
		for {
			select {
			case <-exited:
				t.Fatalf("carewatch-teams %s exited: %v\n%s", strings.Join(args, " "), waitErr, stderr.String())
			default:
			}
			resp, err := client.Get("http://" + addr + endpoint)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\n%s", endpoint, err, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func readDockerignore(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, strings.TrimPrefix(l, "/"))
		}
	}
	return pats
}

// ignoredBy reports the .dockerignore pattern that leaves p (a path
// relative to the root, or any folder above it) out of the build context.
// It understands the patterns this repository uses: plain paths, * and
// a leading **/.
func ignoredBy(patterns []string, p string) (string, bool) {
	parts := strings.Split(p, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		for _, pat := range patterns {
			if strings.HasPrefix(pat, "!") {
				continue
			}
			if any, ok := strings.CutPrefix(pat, "**/"); ok {
				if m, _ := path.Match(any, parts[i-1]); m {
					return pat, true
				}
				continue
			}
			if m, _ := path.Match(pat, prefix); m {
				return pat, true
			}
		}
	}
	return "", false
}

func TestIgnoredBy(t *testing.T) {
	pats := []string{".git", "**/testdata", "*.test", "dashboards"}
	for _, c := range []struct {
		path string
		want bool
	}{
		{"go.mod", false},
		{"examples/demo/carewatch.yml", false},
		{".git/config", true},
		{"config/testdata/bad.yml", true},
		{"collector.test", true},
		{"dashboards/overview.json", true},
	} {
		t.Run(fmt.Sprintf("%s ignored %v", c.path, c.want), func(t *testing.T) {
			if _, got := ignoredBy(pats, c.path); got != c.want {
				t.Errorf("ignoredBy(%q) = %v", c.path, got)
			}
		})
	}
}

// TestEnvFileIsIgnored checks that the .env holding the stack's passwords
// can be neither committed nor copied into an image, while .env.example,
// which documents it, stays in the repository. git itself decides what it
// ignores.
func TestEnvFileIsIgnored(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed to check .gitignore: %v", err)
	}
	for _, c := range []struct {
		path    string
		ignored bool
	}{
		{".env", true},
		{"deploy/.env", true},
		{".env.example", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		// --no-index: the answer from the ignore rules alone, whether or not
		// the path is tracked; exit 0 ignored, 1 not ignored, else an error.
		cmd := exec.CommandContext(ctx, gitBin, "-C", root, "check-ignore", "-q", "--no-index", c.path)
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		switch {
		case err == nil:
			if !c.ignored {
				t.Errorf("git ignores %s, which belongs in the repository", c.path)
			}
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			if c.ignored {
				t.Errorf("git does not ignore %s: add it to .gitignore", c.path)
			}
		default:
			t.Fatalf("git check-ignore %s: %v", c.path, err)
		}
	}
	if _, ok := ignoredBy(readDockerignore(t), ".env"); !ok {
		t.Error(".dockerignore does not leave .env out of the build context")
	}
}

// fileSettings returns the value of every setting under v whose name ends
// in _file (smtp_auth_password_file, credentials_file, ...), by name.
func fileSettings(v any) [][2]string {
	var out [][2]string
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if f, ok := x[k].(string); ok && strings.HasSuffix(k, "_file") {
				out = append(out, [2]string{k, f})
				continue
			}
			out = append(out, fileSettings(x[k])...)
		}
	case []any:
		for _, c := range x {
			out = append(out, fileSettings(c)...)
		}
	}
	return out
}

// Every file Alertmanager's configuration names (the SMTP password among
// them) is mounted where it says, as a secret or from the repository.
func TestComposeAlertmanagerHasTheFilesItsConfigurationNames(t *testing.T) {
	p := mustLoad(t)
	am := service(t, p, alertmanagerSvc)
	var cfg map[string]any
	readYAML(t, filepath.Join(root, mustHostFile(t, am, flagValue(am.Command, "config.file"))), &cfg)
	files := fileSettings(cfg)
	if len(files) == 0 {
		t.Fatal("alertmanager's configuration names no file: nothing to check")
	}
	secrets := map[string]string{}
	for _, sec := range am.Secrets {
		secrets[secretPath(sec)] = sec.Source
	}
	for _, f := range files {
		t.Run(f[0]+" "+f[1]+" is mounted", func(t *testing.T) {
			if src, ok := secrets[f[1]]; ok {
				decl := p.Secrets[src]
				if _, err := os.Stat(decl.File); err != nil {
					t.Errorf("secret %s: %v", src, err)
				}
				return
			}
			host, ok := hostFile(t, am, f[1])
			if !ok {
				t.Fatalf("alertmanager reads %s from %s, which neither a secret nor a bind mount puts there", f[0], f[1])
			}
			if _, err := os.Stat(filepath.Join(root, host)); err != nil {
				t.Error(err)
			}
		})
	}
}

// versionPackage is where the version `--version` prints is set at link
// time.
const versionPackage = "github.com/prometheus/common/version"

// buildArgsOf returns the ARG names a stage declares.
func buildArgsOf(st stage) []string {
	var out []string
	for _, in := range st.instructions {
		if in[0] == "ARG" {
			name, _, _ := strings.Cut(in[1], "=")
			out = append(out, name)
		}
	}
	return out
}

// dockerfileLDFlags returns the -ldflags of the build stage's go build,
// with its build arguments replaced by args.
func dockerfileLDFlags(t *testing.T, args map[string]string) string {
	t.Helper()
	for _, in := range readDockerfile(t)[0].instructions {
		if in[0] != "RUN" || !strings.Contains(in[1], "go build") {
			continue
		}
		m := regexp.MustCompile(`-ldflags\s+"([^"]*)"`).FindStringSubmatch(in[1])
		if m == nil {
			t.Fatal("the build stage's go build has no -ldflags \"...\"")
		}
		return regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).ReplaceAllStringFunc(m[1], func(v string) string {
			return args[strings.Trim(v, "${}")]
		})
	}
	t.Fatal("the build stage runs no go build")
	return ""
}

// Compose builds each image with the version and revision it is given, and
// the binaries print them: carewatch --version says which build runs.
func TestComposePassesTheVersionIntoImageBuilds(t *testing.T) {
	p := mustLoad(t)
	build := readDockerfile(t)[0]
	declared := buildArgsOf(build)
	for _, arg := range []string{"VERSION", "REVISION"} {
		if !slices.Contains(declared, arg) {
			t.Errorf("the build stage declares no ARG %s", arg)
		}
	}
	ldflags := dockerfileLDFlags(t, map[string]string{"VERSION": "{VERSION}", "REVISION": "{REVISION}"})
	for _, want := range []string{"-X " + versionPackage + ".Version={VERSION}", "-X " + versionPackage + ".Revision={REVISION}"} {
		if !strings.Contains(ldflags, want) {
			t.Errorf("the build's -ldflags %q do not set %s", ldflags, want)
		}
	}
	for _, name := range []string{carewatchService, teamsRelayService} {
		t.Run(name+" is built with the version and revision", func(t *testing.T) {
			s := service(t, p, name)
			for _, arg := range []string{"VERSION", "REVISION"} {
				if v := s.Build.Args[arg]; v == nil || *v == "" {
					t.Errorf("%s's build passes no %s", name, arg)
				}
			}
		})
	}
	t.Run("the version Compose is given is the one carewatch --version prints", func(t *testing.T) {
		const version, revision = "9.8.7-sentinel", "0badc0de"
		vars := requiredVariables()
		vars["CAREWATCH_VERSION"], vars["CAREWATCH_REVISION"] = version, revision
		p, err := loadProject(t, vars)
		if err != nil {
			t.Fatal(err)
		}
		args := map[string]string{}
		for k, v := range service(t, p, carewatchService).Build.Args {
			if v != nil {
				args[k] = *v
			}
		}
		bin := buildStatic(t, "./cmd/carewatch", dockerfileLDFlags(t, args))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("carewatch --version: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), version) || !strings.Contains(string(out), revision) {
			t.Errorf("carewatch --version printed %q, want version %s and revision %s", out, version, revision)
		}
	})
}

// The images Compose runs are pinned to a patch release (or, for the
// PostgreSQL and base images, to a tag its publisher moves to each new
// patch of the major release), never to latest.
func TestComposeImagesArePinnedToPatchReleases(t *testing.T) {
	p := mustLoad(t)
	patch := regexp.MustCompile(`:v?\d+\.\d+\.\d+$`)
	tracked := map[string]*regexp.Regexp{"postgres": regexp.MustCompile(`^postgres:\d+-bookworm$`)}
	images := map[string]string{}
	for _, s := range p.Services {
		if s.Build == nil {
			images[s.Name] = s.Image
		}
	}
	for _, st := range readDockerfile(t) {
		if !strings.Contains(st.from, "/") && !strings.Contains(st.from, ":") {
			continue // another stage
		}
		images["Dockerfile stage "+st.name] = st.from
	}
	for who, image := range images {
		t.Run(who+" runs "+image, func(t *testing.T) {
			repo, _, _ := strings.Cut(image, ":")
			if re, ok := tracked[repo]; ok {
				if !re.MatchString(image) {
					t.Errorf("%s: want %s", image, re)
				}
				return
			}
			if strings.HasPrefix(who, "Dockerfile stage") && (repo == "golang" || repo == "alpine") {
				// The toolchain and base images: their minor tags follow
				// every patch release.
				if !regexp.MustCompile(`:\d+\.\d+(-\w+)?$`).MatchString(image) {
					t.Errorf("%s: want a minor release tag", image)
				}
				return
			}
			if !patch.MatchString(image) {
				t.Errorf("%s is not pinned to a patch release", image)
			}
		})
	}
}
