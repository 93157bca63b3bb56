// Package config loads and validates connectors.yaml (CONTRACT §3): the
// file, ${VAR} expansion, WAHUB_ environment overrides, defaults, and every
// cross-reference between schedules, teams, routes, triggers, subscriptions
// and connectors. Whatever it returns is ready to use: schedules are parsed,
// regular expressions compiled, defaults filled in.
package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/builtin"
	"github.com/wahub/wahub/plugins/registry"
)

// Builtins are the connector plugins that ship inside the wahub binary.
// Kept sorted: error messages and `wahub plugins` list them in this order.
var Builtins = builtin.Plugins.Names()

// EventTypes are the event types of CONTRACT §4 other than the open-ended
// whatsapp.<field> family. Rules naming anything else are typos.
var EventTypes = []string{
	"button.clicked",
	"contact.changed",
	"deadletter.created",
	"message.received",
	"message.sent",
	"optin.granted",
	"optin.revoked",
	"status.delivered",
	"status.failed",
	"status.played",
	"status.read",
	"status.sent",
}

// Config is a loaded, validated connectors.yaml. The koanf tags are the YAML
// keys; fields tagged "-" are derived from the others during Load.
type Config struct {
	// Path is the file the configuration came from ("" for Parse).
	Path string `koanf:"-" json:"path,omitempty"`

	Server        Server               `koanf:"server" json:"server"`
	Store         Store                `koanf:"store" json:"store"`
	Media         Media                `koanf:"media" json:"media"`
	Log           Log                  `koanf:"log" json:"log"`
	WhatsApp      WhatsApp             `koanf:"whatsapp" json:"whatsapp"`
	Sandbox       bool                 `koanf:"sandbox" json:"sandbox"`
	SandboxPublic bool                 `koanf:"sandbox_public" json:"sandbox_public"`
	Schedules     map[string]*Schedule `koanf:"schedules" json:"schedules,omitempty"`
	Teams         map[string]Team      `koanf:"teams" json:"teams,omitempty"`
	Routes        []Route              `koanf:"routes" json:"routes,omitempty"`
	Affinity      Affinity             `koanf:"affinity" json:"affinity"`
	Triggers      []Trigger            `koanf:"triggers" json:"triggers,omitempty"`
	Subscriptions []Subscription       `koanf:"subscriptions" json:"subscriptions,omitempty"`
	Connectors    map[string]Connector `koanf:"connectors" json:"connectors,omitempty"`

	// refs records which ${VAR}s fed which key, so that ServeProblems can
	// name the variable a user forgot to export.
	refs map[string][]string
}

// Server is the HTTP listener and the admin API.
type Server struct {
	Listen     string `koanf:"listen" default:"127.0.0.1:8080" json:"listen"`
	AdminToken Secret `koanf:"admin_token" json:"admin_token"`
	// ViewerToken signs in to the console read-only: it sees everything
	// and changes nothing. It is not accepted by the admin API.
	ViewerToken     Secret        `koanf:"viewer_token" json:"viewer_token,omitempty"`
	MaxBodyBytes    int           `koanf:"max_body_bytes" default:"4194304" json:"max_body_bytes"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout" default:"15s" json:"shutdown_timeout"`
	// WriteTimeout bounds the time from reading a request's headers to the
	// end of writing its answer, so a client that stops reading cannot
	// hold a connection forever. A handler that streams sets its own
	// deadline (http.ResponseController).
	WriteTimeout time.Duration `koanf:"write_timeout" default:"60s" json:"write_timeout"`
	// MetricsListen, when set, serves GET /metrics and GET /readyz on this
	// address only (an internal interface, e.g. 127.0.0.1:9090), not on
	// the public listener.
	MetricsListen string `koanf:"metrics_listen" json:"metrics_listen,omitempty"`
	// TLSCert and TLSKey, both set, serve HTTPS directly (else run behind
	// a reverse proxy that terminates TLS).
	TLSCert string `koanf:"tls_cert" json:"tls_cert,omitempty"`
	TLSKey  string `koanf:"tls_key" json:"tls_key,omitempty"`
}

// Store is where the hub keeps its state: one SQLite file (the default),
// or a PostgreSQL database that several hubs share.
type Store struct {
	// Driver is sqlite or postgres.
	Driver string `koanf:"driver" default:"sqlite" json:"driver"`
	Path   string `koanf:"path" default:"data/wahub.db" json:"path"`
	// URL is the PostgreSQL database (postgres://user:pass@host:5432/db);
	// a secret, because it usually holds the password.
	URL Secret `koanf:"url" json:"url,omitempty"`
	// LeaseTimeout (postgres) is how long a hub that stopped answering
	// keeps its share of the work before the others take it over.
	LeaseTimeout time.Duration `koanf:"lease_timeout" default:"10s" json:"lease_timeout"`
	// NodeID (postgres) names this hub in `wahub cluster`; default: host
	// name, process id and a random suffix.
	NodeID      string        `koanf:"node_id" json:"node_id,omitempty"`
	BusyTimeout time.Duration `koanf:"busy_timeout" default:"5s" json:"busy_timeout"`
	// RetentionDays prunes settled events older than this many days; 0
	// keeps everything. Dead letters and undelivered events are never
	// pruned.
	RetentionDays int `koanf:"retention_days" json:"retention_days,omitempty"`
}

// Media is where the hub keeps media files (customers' photos, voice
// notes and documents; agents' attachments) and how it fetches them.
type Media struct {
	// Store is the backend: local (a directory), postgres (the store's
	// database) or s3 (a bucket several hubs share).
	Store string `koanf:"store" default:"local" json:"store"`
	// Path is the local directory; default: media/ next to store.path.
	Path string `koanf:"path" json:"path,omitempty"`
	// MaxSize is the largest file kept ("100MB", "16MiB", or bytes);
	// MaxBytes is it parsed.
	MaxSize  string `koanf:"max_size" default:"100MB" json:"max_size"`
	MaxBytes int64  `koanf:"-" json:"-"`
	// RetentionDays deletes files older than this many days; 0 keeps them.
	RetentionDays int `koanf:"retention_days" json:"retention_days,omitempty"`
	// DeliveryWait is how long delivery holds an event whose file is still
	// being fetched, so connectors get it available; 0 does not hold.
	DeliveryWait time.Duration `koanf:"delivery_wait" default:"2m" json:"delivery_wait"`
	// SpoolDir holds files while they stream in (postgres and s3; default:
	// the system's temporary directory).
	SpoolDir string     `koanf:"spool_dir" json:"spool_dir,omitempty"`
	Fetch    MediaFetch `koanf:"fetch" json:"fetch"`
	S3       MediaS3    `koanf:"s3" json:"s3"`
}

// MediaFetch is how inbound files are fetched from the Graph API.
type MediaFetch struct {
	MaxAttempts     int           `koanf:"max_attempts" default:"8" json:"max_attempts"`
	InitialInterval time.Duration `koanf:"initial_interval" default:"5s" json:"initial_interval"`
	MaxInterval     time.Duration `koanf:"max_interval" default:"10m" json:"max_interval"`
	Timeout         time.Duration `koanf:"timeout" default:"10m" json:"timeout"`
	Concurrency     int           `koanf:"concurrency" default:"4" json:"concurrency"`
}

// MediaS3 is an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...).
type MediaS3 struct {
	Endpoint        string `koanf:"endpoint" json:"endpoint,omitempty"` // host:port or https://host:port
	Bucket          string `koanf:"bucket" json:"bucket,omitempty"`
	Region          string `koanf:"region" default:"us-east-1" json:"region"`
	Prefix          string `koanf:"prefix" json:"prefix,omitempty"`
	AccessKeyID     Secret `koanf:"access_key_id" json:"access_key_id,omitempty"`
	SecretAccessKey Secret `koanf:"secret_access_key" json:"secret_access_key,omitempty"`
	// PathStyle addresses the bucket as endpoint/bucket (MinIO and most
	// self-hosted servers) instead of bucket.endpoint.
	PathStyle bool `koanf:"path_style" json:"path_style,omitempty"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `koanf:"level" default:"info" json:"level"`   // debug, info, warn, error
	Format string `koanf:"format" default:"auto" json:"format"` // auto, json, text
}

// WhatsApp is the Cloud API side: webhook verification and outbound policy.
type WhatsApp struct {
	// AppSecret holds every secret a webhook signature may be made with; more
	// than one while rotating. Empty entries are dropped.
	AppSecret   []Secret `koanf:"app_secret" json:"app_secret,omitempty"`
	VerifyToken Secret   `koanf:"verify_token" json:"verify_token"`
	AccessToken Secret   `koanf:"access_token" json:"access_token"`
	APIURL      string   `koanf:"api_url" default:"https://graph.facebook.com/v23.0" json:"api_url"`
	// BusinessAccountID is the WABA whose message templates the hub keeps
	// (GET /{waba-id}/message_templates); unset, templates are known only
	// from webhooks.
	BusinessAccountID string `koanf:"business_account_id" json:"business_account_id,omitempty"`
	// TemplatesRefresh is how often the catalogue is fetched again;
	// template webhooks update it in between.
	TemplatesRefresh time.Duration `koanf:"templates_refresh" default:"1h" json:"templates_refresh"`
	// MarkReadOnReply marks the customer's messages read, with the typing
	// indicator, when an agent answers from a connector.
	MarkReadOnReply     bool     `koanf:"mark_read_on_reply" default:"true" json:"mark_read_on_reply"`
	MessagesPerSecond   float64  `koanf:"messages_per_second" default:"80" json:"messages_per_second"`
	BlockedCountryCodes []string `koanf:"blocked_country_codes" json:"blocked_country_codes,omitempty"`
	// PhoneNumberIDs are the business numbers the hub may send from; empty
	// means any number a webhook has come for.
	PhoneNumberIDs []string `koanf:"phone_number_ids" json:"phone_number_ids,omitempty"`
	// TemplateCategories names templates that are not marketing (utility,
	// authentication): those may still go to a customer who opted out.
	TemplateCategories map[string]string `koanf:"template_categories" json:"template_categories,omitempty"`
	// PairInterval and PairBurst are WhatsApp's per-recipient limit: about
	// one message every six seconds, with a small burst.
	PairInterval   time.Duration `koanf:"pair_interval" default:"6s" json:"pair_interval"`
	PairBurst      int           `koanf:"pair_burst" default:"3" json:"pair_burst"`
	OptOutKeywords []string      `koanf:"opt_out_keywords" default:"STOP,PARAR,SAIR,CANCELAR" json:"opt_out_keywords"`
	OptInKeywords  []string      `koanf:"opt_in_keywords" default:"START,VOLTAR" json:"opt_in_keywords"`
	// OptOutPayloads and OptInPayloads are template quick-reply payloads
	// that mean the same as the keywords.
	OptOutPayloads []string `koanf:"opt_out_payloads" json:"opt_out_payloads,omitempty"`
	OptInPayloads  []string `koanf:"opt_in_payloads" json:"opt_in_payloads,omitempty"`
}

// Team is who handles a routed conversation.
type Team struct {
	// Connectors get the team's events; a binding with Events gets only
	// those types (an alerts channel).
	Connectors []Binding `koanf:"connectors" json:"connectors"`
	Schedule   string    `koanf:"schedule" json:"schedule,omitempty"`
	// AfterHours is the team that takes over while Schedule is closed.
	AfterHours string `koanf:"after_hours" json:"after_hours,omitempty"`
}

// Route is one ordered routing rule; the first whose When matches wins.
type Route struct {
	Name string     `koanf:"name" json:"name"`
	When Conditions `koanf:"when" json:"when"`
	Team string     `koanf:"team" json:"team"`
}

// Conditions are ANDed; the values inside one condition are ORed. The zero
// value matches everything.
type Conditions struct {
	Event         []string            `koanf:"event" json:"event,omitempty"`
	Keywords      []string            `koanf:"keywords" json:"keywords,omitempty"`
	Regex         []string            `koanf:"regex" json:"regex,omitempty"`
	Button        []string            `koanf:"button" json:"button,omitempty"`
	Contact       map[string][]string `koanf:"contact" json:"contact,omitempty"`
	PhoneNumberID []string            `koanf:"phone_number_id" json:"phone_number_id,omitempty"`
	CountryCode   []string            `koanf:"country_code" json:"country_code,omitempty"`
	Within        string              `koanf:"within" json:"within,omitempty"`
	Outside       string              `koanf:"outside" json:"outside,omitempty"`
	Consent       []string            `koanf:"consent" json:"consent,omitempty"`

	// Regexps are Regex compiled, in the same order.
	Regexps []*regexp.Regexp `koanf:"-" json:"-"`
}

// Affinity keeps follow-ups of an open conversation with the team that has it.
type Affinity struct {
	IdleTimeout time.Duration `koanf:"idle_timeout" default:"24h" json:"idle_timeout"`
	// RulesCanMove names the routes allowed to take an open conversation
	// away from the team that has it.
	RulesCanMove []string `koanf:"rules_can_move" json:"rules_can_move,omitempty"`
}

// Trigger fires its actions for every event of a type in On that matches When.
type Trigger struct {
	Name    string            `koanf:"name" json:"name"`
	On      []string          `koanf:"on" json:"on"`
	When    Conditions        `koanf:"when" json:"when"`
	Reply   *Reply            `koanf:"reply" json:"reply,omitempty"`
	Set     map[string]string `koanf:"set" json:"set,omitempty"`
	Assign  string            `koanf:"assign" json:"assign,omitempty"`
	Deliver []string          `koanf:"deliver" json:"deliver,omitempty"`
}

// Reply is an automatic answer: exactly one of Text, Template,
// Interactive and Media is set.
type Reply struct {
	Text     string    `koanf:"text" json:"text,omitempty"`
	Template *Template `koanf:"template" json:"template,omitempty"`
	// Interactive is a WhatsApp interactive object (reply buttons or a
	// list), as the Graph API takes it.
	Interactive map[string]any `koanf:"interactive" json:"interactive,omitempty"`
	// Media is a file to send: a media id the hub holds (POST
	// /api/v1/media) or an https link it fetches when the reply goes.
	Media *ReplyMedia `koanf:"media" json:"media,omitempty"`
}

// ReplyMedia is a trigger's file: exactly one of ID and URL.
type ReplyMedia struct {
	Type     string `koanf:"type" json:"type,omitempty"` // image, audio, video, document, sticker; default from the file
	ID       string `koanf:"id" json:"id,omitempty"`
	URL      string `koanf:"url" json:"url,omitempty"`
	Caption  string `koanf:"caption" json:"caption,omitempty"`
	Filename string `koanf:"filename" json:"filename,omitempty"`
}

// Template is a WhatsApp message template; Components are passed to the
// Graph API as written.
type Template struct {
	Name       string           `koanf:"name" json:"name"`
	Language   string           `koanf:"language" json:"language"`
	Components []map[string]any `koanf:"components" json:"components,omitempty"`
}

// Subscription sends every event of the given types to a connector,
// whatever the route.
type Subscription struct {
	Connector string `koanf:"connector" json:"connector,omitempty"`
	// Connectors is the list form: several connectors, each optionally
	// with its own event types instead of Events.
	Connectors []Binding `koanf:"connectors" json:"connectors,omitempty"`
	Events     []string  `koanf:"events" json:"events"`
}

// Binding is a connector a team or subscription delivers to. In YAML it
// is a connector's name, or {name, events} to deliver only those event
// types ("status.failed", "deadletter.*").
type Binding struct {
	Name   string   `koanf:"name" json:"name"`
	Events []string `koanf:"events" json:"events,omitempty"`
}

// MarshalJSON writes a binding without events as its name, as it was
// most likely written.
func (b Binding) MarshalJSON() ([]byte, error) {
	if len(b.Events) == 0 {
		return json.Marshal(b.Name)
	}
	type plain Binding
	return json.Marshal(plain(b))
}

// Names are the bindings' connector names.
func Names(bs []Binding) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

// Connector is one configured plugin instance.
// DevSHA256, as an external plugin's sha256, runs the executable without
// checking its digest, so that a plugin being developed need not be
// re-hashed after every build. Validation refuses it unless sandbox is
// true: a production hub runs only the binary it was told about.
const DevSHA256 = "dev"

type Connector struct {
	// Plugin is a name from Builtins or a path to an executable.
	Plugin registry.PluginRef `koanf:"plugin" json:"plugin"`
	// SHA256 is the lowercase hex digest an external plugin must have, or
	// DevSHA256 (sandbox only).
	SHA256  string `koanf:"sha256" json:"sha256,omitempty"`
	Enabled bool   `koanf:"enabled" default:"true" json:"enabled"`
	// Config is handed to the plugin, which validates it.
	Config PluginConfig `koanf:"config" json:"config,omitempty"`
	// RatePerSecond limits deliveries; 0 means unlimited.
	RatePerSecond float64 `koanf:"rate_per_second" json:"rate_per_second,omitempty"`
	BatchSize     int     `koanf:"batch_size" default:"100" json:"batch_size"`
	Retry         Retry   `koanf:"retry" json:"retry"`
}

// External reports whether the plugin is an executable outside the binary.
func (c Connector) External() bool { return !c.Plugin.Builtin() }

// Retry is a connector's delivery retry schedule.
type Retry struct {
	MaxAttempts     int           `koanf:"max_attempts" default:"12" json:"max_attempts"`
	InitialInterval time.Duration `koanf:"initial_interval" default:"1s" json:"initial_interval"`
	MaxInterval     time.Duration `koanf:"max_interval" default:"30m" json:"max_interval"`
}

// Error is a configuration problem at one key.
type Error struct {
	// Key is the path of the offending key, such as routes[1].team; for a
	// file that cannot be read or parsed it is the file's path.
	Key string
	// Msg says what is wrong and what to do. It never contains a secret.
	Msg string
	// File and Line are where the key is written (or the section it is
	// missing from), when the configuration came from a file.
	File string
	Line int
	// Item names the route or trigger the key is inside (`route "vip"`).
	Item string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.File != "" && e.Line > 0 {
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		if e.Item != "" {
			b.WriteString(" (" + e.Item + ")")
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the YAML file at path and returns its validated configuration.
// environ (like os.Environ()) feeds ${VAR} expansion and WAHUB_ overrides;
// it is a parameter so that tests do not depend on the process environment.
// Every error is an *Error, or several joined with errors.Join.
func Load(path string, environ []string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Key: path, Msg: "file not found (pass --config FILE or set WAHUB_CONFIG)"}
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{Key: path, Msg: "cannot read: " + err.Error()}
	}
	return parse(b, environ, path)
}

// Parse is Load for a configuration already in memory.
func Parse(yaml []byte, environ []string) (*Config, error) {
	return parse(yaml, environ, "")
}

// BuiltinPlugins returns the sorted names of the built-in plugins.
func (c *Config) BuiltinPlugins() []string {
	return append([]string(nil), Builtins...)
}

// ServeProblems reports what the configuration lacks to serve Meta's
// webhooks. Load accepts a configuration without them so that commands
// which do not serve (route --explain, plugins) still work. With
// sandbox: true the sandbox fills in what is unset (package sandbox), so
// nothing is missing.
func (c *Config) ServeProblems() []error {
	if c.Sandbox {
		return nil
	}
	var out []error
	if len(c.WhatsApp.AppSecret) == 0 {
		out = append(out, &Error{Key: "whatsapp.app_secret", Msg: c.unsetMsg("whatsapp.app_secret",
			"WHATSAPP_APP_SECRET", "webhook signatures cannot be verified without it; it is the App secret in Meta's App Dashboard › App settings › Basic")})
	}
	if c.WhatsApp.VerifyToken.Reveal() == "" {
		out = append(out, &Error{Key: "whatsapp.verify_token", Msg: c.unsetMsg("whatsapp.verify_token",
			"WHATSAPP_VERIFY_TOKEN", "Meta's GET handshake cannot succeed without it; it is the Verify token you type in App Dashboard › WhatsApp › Configuration")})
	}
	return out
}

// unsetMsg names the variables that would have filled key: those the file
// references with ${VAR} if any, else the conventional one.
func (c *Config) unsetMsg(key, conventional, why string) string {
	override := envName(key)
	var vars []string
	for k, names := range c.refs {
		if k == key || strings.HasPrefix(k, key+"[") {
			vars = append(vars, names...)
		}
	}
	if len(vars) == 0 {
		return "not set; " + why + ". Set it in the file (e.g. " + lastSegment(key) + ": ${" + conventional +
			"}) or with the environment variable " + override
	}
	vars = sortedUnique(vars)
	return "empty because " + strings.Join(vars, ", ") + " is unset or empty; " + why +
		". Export " + strings.Join(vars, " or ") + ", or set " + override
}

func lastSegment(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// envName is the WAHUB_ variable that overrides key.
func envName(key string) string {
	return "WAHUB_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}
