package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
)

const envPrefix = "WAHUB_"

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[time.Duration]()
	bindingType  = reflect.TypeFor[Binding]()
	secretType   = reflect.TypeFor[Secret]()
)

// loader carries what one Load learns along the way: the errors, and where
// values came from, so that messages can name an environment variable
// instead of printing a value that may be a secret.
type loader struct {
	environ map[string]string
	errs    []*Error
	// envNames maps a dotted override key (routes.1.team) to its variable.
	envNames map[string]string
	// fromEnv maps a key path to the WAHUB_ variable that set it.
	fromEnv map[string]string
	// refs maps a key path to the ${VAR}s expanded into it.
	refs map[string][]string
	// broken holds key paths whose value was rejected while decoding; the
	// checks that run afterwards would only repeat the complaint.
	broken map[string]bool
}

func parse(b []byte, environ []string, path string) (*Config, error) {
	name := path
	if name == "" {
		name = "<input>"
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return nil, &Error{Key: name, Msg: yamlMsg(err)}
	}
	l := newLoader(environ)
	expanded, _ := l.expand("", raw).(map[string]any)
	if expanded == nil {
		expanded = map[string]any{}
	}

	// koanf layers the environment over the file; the merge function is
	// ours because overrides must reach into lists (routes.1.team) and
	// remember which variable set which key.
	k := koanf.New(".")
	if err := k.Load(mapProvider(expanded), nil); err != nil {
		return nil, &Error{Key: name, Msg: err.Error()}
	}
	envp := env.Provider(".", env.Opt{
		Prefix:        envPrefix,
		TransformFunc: l.envKey,
		EnvironFunc:   func() []string { return environ },
	})
	if err := k.Load(envp, nil, koanf.WithMergeFunc(l.mergeEnv)); err != nil {
		return nil, &Error{Key: name, Msg: err.Error()}
	}

	norm, _ := l.value("", configType, k.Raw())
	var c Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:     "koanf",
		Result:      &c,
		ErrorUnused: true,
	})
	if err == nil {
		err = dec.Decode(norm)
	}
	if err != nil {
		// value() already converted everything to the target types, so
		// this is a bug here rather than in the user's file.
		return nil, &Error{Key: name, Msg: "internal error decoding the configuration: " + err.Error()}
	}
	c.Path = path
	c.refs = l.refs

	decodeErrs := l.errs
	l.errs = nil
	validate(&c, l)
	for _, e := range l.errs {
		if !l.isBroken(e.Key) {
			decodeErrs = append(decodeErrs, e)
		}
	}
	locate(decodeErrs, b, path)
	if err := joinErrors(decodeErrs); err != nil {
		return nil, err
	}
	return &c, nil
}

func newLoader(environ []string) *loader {
	l := &loader{
		environ:  make(map[string]string, len(environ)),
		envNames: map[string]string{},
		fromEnv:  map[string]string{},
		refs:     map[string][]string{},
		broken:   map[string]bool{},
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		// The first occurrence wins, as with os.Getenv.
		if _, dup := l.environ[k]; !dup {
			l.environ[k] = v
		}
	}
	return l
}

func (l *loader) fail(key, format string, args ...any) {
	l.errs = append(l.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) isBroken(key string) bool {
	for p := range l.broken {
		if under(key, p) {
			return true
		}
	}
	return false
}

// under reports whether key is path or inside it.
func under(key, path string) bool {
	if path == "" {
		return true
	}
	return key == path || strings.HasPrefix(key, path+".") || strings.HasPrefix(key, path+"[")
}

// joinErrors sorts by key so that the report reads in file order
// regardless of map iteration, and returns a lone error unwrapped.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Key != errs[j].Key {
			return naturalLess(errs[i].Key, errs[j].Key)
		}
		return errs[i].Msg < errs[j].Msg
	})
	if len(errs) == 1 {
		return errs[0]
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// naturalLess orders routes[2] before routes[10].
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := leadingDigits(a)
			nb, rb := leadingDigits(b)
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, s[i:]
}

func yamlMsg(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.Contains(s, "cannot unmarshal") && strings.Contains(s, "into map") {
		return "not a configuration: the file must be a YAML mapping of sections such as server:, whatsapp: and connectors:"
	}
	s = strings.TrimPrefix(s, "unmarshal errors:")
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return "invalid YAML: " + strings.Join(parts, "; ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// mapProvider hands an already parsed map to koanf.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: mapProvider has no bytes")
}

func (m mapProvider) Read() (map[string]any, error) { return m, nil }

// ---- ${VAR} expansion ----

// expand replaces ${VAR} and ${VAR:-default} in every string of the parsed
// tree. Doing it after parsing means a value containing ':' or '#' can
// never change the structure of the file. It also turns YAML maps with
// non-string keys into string-keyed ones.
func (l *loader) expand(path string, v any) any {
	switch x := v.(type) {
	case string:
		return l.expandString(path, x)
	case map[string]any:
		for k, e := range x {
			x[k] = l.expand(join(path, k), e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			m[ks] = l.expand(join(path, ks), e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = l.expand(index(path, i), e)
		}
		return x
	}
	return v
}

func (l *loader) expandString(path, s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			// The value is not shown: it may be half a secret.
			l.fail(path, "unterminated ${: write ${VAR} or ${VAR:-default}")
			return s
		}
		ref := rest[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			l.fail(path, "malformed reference ${%s}: write ${VAR} or ${VAR:-default}, VAR being letters, digits and _", clip(name, 40))
			return s
		}
		l.refs[path] = appendUnique(l.refs[path], name)
		val, set := l.environ[name]
		if hasDef && (!set || val == "") {
			val = def
		}
		b.WriteString(val)
		rest = rest[i+end+1:]
	}
	return b.String()
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// ---- WAHUB_ overrides ----

var topLevel = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range fieldsOf(configType) {
		m[f.name] = true
	}
	return m
}()

// envKey turns WAHUB_SERVER__ADMIN_TOKEN into server.admin_token. Only
// variables whose first segment is a section of the file are overrides:
// WAHUB_CONFIG and WAHUB_ADMIN_TOKEN are ordinary variables that
// connectors.yaml reads with ${...}.
func (l *loader) envKey(name, value string) (string, any) {
	segs := strings.Split(strings.TrimPrefix(name, envPrefix), "__")
	if !topLevel[strings.ToLower(segs[0])] {
		return "", nil
	}
	for i, s := range segs {
		if s == "" || strings.Contains(s, ".") {
			l.fail(name, "cannot tell which key this environment variable sets: write WAHUB_ and the key path with __ between levels, as in WAHUB_SERVER__LISTEN")
			return "", nil
		}
		segs[i] = strings.ToLower(s)
	}
	key := strings.Join(segs, ".")
	l.envNames[key] = name
	return key, value
}

// mergeEnv lays the overrides (src, nested by koanf) over the file (dest).
func (l *loader) mergeEnv(src, dest map[string]any) error {
	l.mergeMap(dest, src, "", "", configType)
	return nil
}

func (l *loader) mergeMap(dest, src map[string]any, path, dotted string, t reflect.Type) {
	for _, k := range sortedKeys(src) {
		p, d, ft := join(path, k), join(dotted, k), childType(t, k)
		sub, isMap := src[k].(map[string]any)
		if !isMap {
			dest[k] = src[k]
			l.setFromEnv(p, l.envNames[d])
			continue
		}
		switch cur := dest[k].(type) {
		case map[string]any:
			l.mergeMap(cur, sub, p, d, ft)
		case []any:
			l.mergeList(cur, sub, p, d, ft)
		default:
			if ft != nil && ft.Kind() == reflect.Slice {
				l.fail(p, "the file has no entries here for %s to change; add them to the file, the environment can only override entries that exist", strings.Join(l.varsUnder(d), ", "))
				continue
			}
			m := map[string]any{}
			dest[k] = m
			l.mergeMap(m, sub, p, d, ft)
		}
	}
}

func (l *loader) mergeList(dest []any, src map[string]any, path, dotted string, t reflect.Type) {
	var elem reflect.Type
	if t != nil && t.Kind() == reflect.Slice {
		elem = t.Elem()
	}
	for _, k := range sortedKeys(src) {
		d := join(dotted, k)
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 {
			l.fail(path, "is a list, so %s must name an entry by its position, as in %s",
				strings.Join(l.varsUnder(d), ", "), envName(path)+"__0")
			continue
		}
		p := index(path, i)
		if i >= len(dest) {
			l.fail(p, "no such entry (the file has %d); %s can only override entries the file has",
				len(dest), strings.Join(l.varsUnder(d), ", "))
			continue
		}
		sub, isMap := src[k].(map[string]any)
		if !isMap {
			dest[i] = src[k]
			l.setFromEnv(p, l.envNames[d])
			continue
		}
		cur, ok := dest[i].(map[string]any)
		if !ok {
			cur = map[string]any{}
			dest[i] = cur
		}
		l.mergeMap(cur, sub, p, d, elem)
	}
}

func (l *loader) setFromEnv(path, name string) {
	l.fromEnv[path] = name
	// The file's ${VAR}s no longer say where the value came from.
	for p := range l.refs {
		if under(p, path) {
			delete(l.refs, p)
		}
	}
}

func (l *loader) varsUnder(dotted string) []string {
	var out []string
	for k, n := range l.envNames {
		if k == dotted || strings.HasPrefix(k, dotted+".") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// envVarsAt lists the WAHUB_ variables that set path or keys inside it.
func (l *loader) envVarsAt(path string) []string {
	var out []string
	for p, n := range l.fromEnv {
		if under(p, path) {
			out = append(out, n)
		}
	}
	return sortedUnique(out)
}

// childType is the schema type at key below t, or nil where the schema
// does not say (unknown keys, opaque maps).
func childType(t reflect.Type, key string) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		for _, f := range fieldsOf(t) {
			if f.name == key {
				return f.typ
			}
		}
	case reflect.Map:
		if t.Elem().Kind() != reflect.Interface {
			return t.Elem()
		}
	}
	return nil
}

// ---- decoding against the schema ----

type fieldInfo struct {
	name   string
	typ    reflect.Type
	def    string
	hasDef bool
}

func fieldsOf(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		def, hasDef := f.Tag.Lookup("default")
		out = append(out, fieldInfo{name: tag, typ: f.Type, def: def, hasDef: hasDef})
	}
	return out
}

// value checks v against the schema type t and converts it to what
// mapstructure can assign without further conversion. It accepts exactly
// the conveniences a hand-written file needs: a number or an unquoted date
// where a string is expected (phone number ids, country codes, holidays),
// a scalar where a list of
// strings is expected, duration strings, and strings where numbers or
// booleans are expected (${VAR} and WAHUB_ values are always strings).
// Anything else is an error naming the key. ok is false when v was
// rejected, so that the caller applies the default instead.
func (l *loader) value(path string, t reflect.Type, v any) (any, bool) {
	if v == nil {
		if t.Kind() == reflect.Struct {
			return l.structure(path, t, nil)
		}
		return nil, true
	}
	if t == durationType {
		return l.duration(path, v)
	}
	if t == bindingType {
		// A connector's name alone is the plain form of a binding.
		if name, ok := v.(string); ok {
			v = map[string]any{"name": name}
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return l.value(path, t.Elem(), v)
	case reflect.Struct:
		return l.structure(path, t, v)
	case reflect.Map:
		return l.mapping(path, t, v)
	case reflect.Slice:
		return l.list(path, t, v)
	case reflect.String:
		return l.str(path, t, v)
	case reflect.Int:
		return l.integer(path, v)
	case reflect.Float64:
		return l.float(path, v)
	case reflect.Bool:
		return l.boolean(path, v)
	case reflect.Interface:
		return v, true
	}
	l.fail(path, "internal error: no decoder for %s", t)
	return nil, false
}

// element is value for a list entry or map value, where a null stands for
// an empty entry rather than an absent key.
func (l *loader) element(path string, t reflect.Type, v any) (any, bool) {
	if v == nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		return l.structure(path, t.Elem(), nil)
	}
	return l.value(path, t, v)
}

func (l *loader) structure(path string, t reflect.Type, v any) (any, bool) {
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		l.typeErr(path, t, "a mapping of keys to values", v)
		return nil, false
	}
	fields := fieldsOf(t)
	byName := make(map[string]fieldInfo, len(fields))
	for _, f := range fields {
		byName[f.name] = f
	}
	out := map[string]any{}
	for _, k := range sortedKeys(m) {
		p := join(path, k)
		f, known := byName[k]
		if !known {
			l.unknownKey(p, fields)
			continue
		}
		if nv, ok := l.value(p, f.typ, m[k]); ok && nv != nil {
			out[k] = nv
		}
	}
	for _, f := range fields {
		if _, set := out[f.name]; set {
			continue
		}
		p := join(path, f.name)
		switch {
		case f.hasDef:
			var def any = f.def
			if f.typ.Kind() == reflect.Slice {
				def = splitList(f.def)
			}
			if nv, ok := l.value(p, f.typ, def); ok {
				out[f.name] = nv
			}
		case f.typ.Kind() == reflect.Struct:
			// Absent sections still get their defaults.
			if nv, ok := l.structure(p, f.typ, nil); ok {
				out[f.name] = nv
			}
		}
	}
	return out, true
}

func (l *loader) unknownKey(path string, fields []fieldInfo) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sort.Strings(names)
	msg := "unknown key (known: " + strings.Join(names, ", ") + ")"
	if vars := l.envVarsAt(path); len(vars) > 0 {
		msg += "; it comes from the environment variable " + strings.Join(vars, ", ") + ": fix or unset it"
	}
	l.errs = append(l.errs, &Error{Key: path, Msg: msg})
}

func (l *loader) mapping(path string, t reflect.Type, v any) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		l.typeErr(path, t, "a mapping of keys to values", v)
		return nil, false
	}
	if t.Elem().Kind() == reflect.Interface {
		// Opaque (a plugin's config): the plugin validates it.
		return m, true
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		if nv, ok := l.element(join(path, k), t.Elem(), m[k]); ok {
			out[k] = nv
		}
	}
	return out, true
}

func (l *loader) list(path string, t reflect.Type, v any) (any, bool) {
	elem := t.Elem()
	items, ok := v.([]any)
	if !ok {
		if elem.Kind() != reflect.String || isCollection(v) {
			l.typeErr(path, t, "a list", v)
			return nil, false
		}
		if s, isStr := v.(string); isStr && l.fromEnv[path] != "" {
			items = splitList(s)
		} else {
			items = []any{v}
		}
	}
	out := make([]any, 0, len(items))
	for i, it := range items {
		nv, ok := l.element(index(path, i), elem, it)
		if !ok && elem.Kind() == reflect.Struct {
			// Keep the positions of later entries stable for messages.
			nv = map[string]any{}
		}
		out = append(out, nv)
	}
	return out, true
}

func (l *loader) str(path string, t reflect.Type, v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case time.Time:
		// YAML reads an unquoted 2026-12-25 as a timestamp; give the text back.
		if x.Equal(x.Truncate(24*time.Hour)) && x.Location() == time.UTC {
			return x.Format(time.DateOnly), true
		}
		return x.Format(time.RFC3339Nano), true
	case bool:
		if t == secretType {
			l.typeErr(path, t, "a string (quote it)", v)
		} else {
			l.typeErr(path, t, "a string (quote it: \""+strconv.FormatBool(x)+"\")", v)
		}
		return nil, false
	}
	l.typeErr(path, t, "a string", v)
	return nil, false
}

func (l *loader) integer(path string, v any) (any, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		if x >= math.MinInt && x <= math.MaxInt {
			return int(x), true
		}
	case uint64:
		if x <= math.MaxInt {
			return int(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x), true
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, true
		}
	}
	l.typeErr(path, nil, "a whole number", v)
	return nil, false
}

func (l *loader) float(path string, v any) (any, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return x, true
		}
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	l.typeErr(path, nil, "a number", v)
	return nil, false
}

func (l *loader) boolean(path string, v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "1", "yes", "on":
			return true, true
		case "false", "f", "0", "no", "off":
			return false, true
		}
	}
	l.typeErr(path, nil, "true or false", v)
	return nil, false
}

func (l *loader) duration(path string, v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if d, err := time.ParseDuration(strings.TrimSpace(x)); err == nil {
			return d, true
		}
	case int:
		if x == 0 {
			return time.Duration(0), true
		}
	}
	l.typeErr(path, nil, "a duration with a unit, such as 30s, 5m or 1h30m", v)
	return nil, false
}

func (l *loader) typeErr(path string, t reflect.Type, want string, v any) {
	l.broken[path] = true
	secret := t == secretType || (t != nil && t.Kind() == reflect.Slice && t.Elem() == secretType)
	l.fail(path, "expected %s, got %s", want, l.describe(path, v, secret))
}

// describe names what a user wrote without printing anything that may be
// a secret: a value from the environment, or any value of a Secret key.
func (l *loader) describe(path string, v any, secret bool) string {
	switch v.(type) {
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "nothing"
	}
	if src := l.source(path); src != "" {
		return src
	}
	if secret {
		return "a value of the wrong type (not shown: it is a secret)"
	}
	switch x := v.(type) {
	case string:
		return strconv.Quote(clip(x, 80))
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// source describes a value that came from the environment, which is shown
// by the name of its variable rather than printed; "" for literal values.
func (l *loader) source(path string) string {
	if n := l.fromEnv[path]; n != "" {
		return "the value of " + n + " (not shown: it may be a secret)"
	}
	if names := l.refs[path]; len(names) > 0 {
		return "the value of ${" + strings.Join(names, "}, ${") + "} (not shown: it may be a secret)"
	}
	return ""
}

func isCollection(v any) bool {
	switch v.(type) {
	case map[string]any, map[any]any, []any:
		return true
	}
	return false
}

// splitList reads a comma-separated list, as environment variables and
// default tags write them.
func splitList(s string) []any {
	out := []any{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedUnique(list []string) []string {
	out := append([]string(nil), list...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i == 0 || s != out[j-1] {
			out[j] = s
			j++
		}
	}
	return out[:j]
}
