package sdk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time in a connector's configuration: Go's
// notation (90s, 15m, 1h30m), whole days (3d, the unit a support team
// thinks in) or 0. Config.Decode reports a bad one with its key. A field of
// type *Duration tells an unset key (nil) from an explicit 0.
type Duration time.Duration

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	if d != 0 && d%Duration(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/Duration(24*time.Hour)), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalJSON writes the notation ParseDuration reads.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string in ParseDuration's notation.
func (d *Duration) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		return nil
	case "0":
		// A bare number 0 reads as what it says; any other number is
		// ambiguous (seconds? hours?) and refused.
		*d = 0
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: durationType}
	}
	v, err := ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: durationType}
	}
	*d = Duration(v)
	return nil
}

var durationType = reflect.TypeFor[Duration]()

// ParseDuration is time.ParseDuration plus whole days ("3d", at most ten
// years) and a bare 0.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("%q is not a duration such as 10s, 15m or 3d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 10s, 15m or 3d", s)
	}
	return d, nil
}

// keyOf finds the key path of the value whose JSON is literal, for an
// error json's decoder reports without one (it does not say where a
// custom type's UnmarshalJSON failed). The first match in key order wins.
func keyOf(raw []byte, literal string) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	var walk func(path string, v any) (string, bool)
	walk = func(path string, v any) (string, bool) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if found, ok := walk(p, x[k]); ok {
					return found, true
				}
			}
		case []any:
			for i, e := range x {
				if found, ok := walk(path+"["+strconv.Itoa(i)+"]", e); ok {
					return found, true
				}
			}
		default:
			if b, err := json.Marshal(x); err == nil && string(b) == literal {
				return path, true
			}
		}
		return "", false
	}
	path, _ := walk("", v)
	return path
}
