package bitrix24test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// object is a JSON object or PHP array with its keys in the order they
// came: Bitrix24 reads `order` and batch `cmd` in that order, which a Go
// map would lose.
type object struct {
	keys []string
	vals map[string]any
}

func newObject() *object { return &object{vals: map[string]any{}} }

func (o *object) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// get finds a parameter the way Bitrix24 does for top-level names: FILTER,
// filter and Filter are the same parameter.
func (o *object) get(name string) (any, bool) {
	if o == nil {
		return nil, false
	}
	if v, ok := o.vals[name]; ok {
		return v, true
	}
	for _, k := range o.keys {
		if strings.EqualFold(k, name) {
			return o.vals[k], true
		}
	}
	return nil, false
}

func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeJSON decodes a JSON document into *object, []any, string,
// json.Number, bool and nil, keeping object key order.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := newObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

// parsePHPQuery reads a query string the way PHP's parse_str does:
// fields[NAME]=Ana&fields[PHONE][0][VALUE]=%2B55...&values[]=x. Keys keep
// their order; arrays whose keys are 0..n-1 become []any.
func parsePHPQuery(q string) (*object, error) {
	root := newObject()
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, fmt.Errorf("bad query key %q", rawKey)
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, fmt.Errorf("bad query value for %q", key)
		}
		path := splitPHPKey(key)
		if len(path) == 0 {
			continue
		}
		cur := root
		for i, seg := range path {
			if seg == "" { // "[]" appends
				seg = strconv.Itoa(len(cur.keys))
			}
			if i == len(path)-1 {
				cur.set(seg, val)
				break
			}
			next, ok := cur.vals[seg].(*object)
			if !ok {
				next = newObject()
				cur.set(seg, next)
			}
			cur = next
		}
	}
	return listify(root).(*object), nil
}

// splitPHPKey turns "a[b][0][]" into ["a", "b", "0", ""].
func splitPHPKey(k string) []string {
	head, rest, found := strings.Cut(k, "[")
	if !found {
		return []string{k}
	}
	out := []string{head}
	rest = "[" + rest
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		out = append(out, rest[1:end])
		rest = rest[end+1:]
	}
	return out
}

// listify turns nested objects whose keys are exactly 0..n-1 into slices,
// as PHP's json_encode would show them.
func listify(v any) any {
	o, ok := v.(*object)
	if !ok {
		return v
	}
	for _, k := range o.keys {
		o.vals[k] = listify(o.vals[k])
	}
	if o == nil || len(o.keys) == 0 {
		return o
	}
	idx := make([]int, 0, len(o.keys))
	for _, k := range o.keys {
		n, err := strconv.Atoi(k)
		if err != nil || n < 0 {
			return o
		}
		idx = append(idx, n)
	}
	sort.Ints(idx)
	for i, n := range idx {
		if i != n {
			return o
		}
	}
	arr := make([]any, len(idx))
	for i := range idx {
		arr[i] = o.vals[strconv.Itoa(i)]
	}
	return arr
}

// str renders a scalar parameter as PHP would compare it.
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "1"
		}
		return ""
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		return strconv.Itoa(t)
	}
	return fmt.Sprint(v)
}

// list returns v as a list: a JSON array, or an object's values in order.
func list(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case *object:
		out := make([]any, 0, len(t.keys))
		for _, k := range t.keys {
			out = append(out, t.vals[k])
		}
		return out
	case nil:
		return nil
	}
	return []any{v}
}

func truthy(v any) bool {
	switch s := strings.ToLower(str(v)); s {
	case "", "0", "n", "false":
		return false
	}
	return true
}
