package sdk

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// unknownKey finds the first key of raw (a JSON object, walked in sorted
// key order) that the config struct v has no field for, and returns its
// dotted path and the keys accepted beside it, so that the error can name
// both ("sync.intervall"; interval, properties). encoding/json names only
// the key, without its section. ok is false when there is none.
func unknownKey(raw []byte, v any) (path string, known []string, ok bool) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return "", nil, false
	}
	return walkUnknown(m, structOf(reflect.TypeOf(v)), "")
}

func walkUnknown(m map[string]any, t reflect.Type, prefix string) (string, []string, bool) {
	if t == nil {
		return "", nil, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, found := fieldByKey(t, k)
		if !found {
			return prefix + k, fieldKeys(t), true
		}
		switch sub := m[k].(type) {
		case map[string]any:
			if st := structOf(f.Type); st != nil && f.Type.Kind() != reflect.Map {
				if p, known, ok := walkUnknown(sub, st, prefix+k+"."); ok {
					return p, known, ok
				}
			}
		case []any:
			if st := structOf(f.Type); st != nil {
				for i, e := range sub {
					if em, isMap := e.(map[string]any); isMap {
						if p, known, ok := walkUnknown(em, st, prefix+k+"["+strconv.Itoa(i)+"]."); ok {
							return p, known, ok
						}
					}
				}
			}
		}
	}
	return "", nil, false
}

// fieldKeys are the keys a struct type accepts, sorted.
func fieldKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k, ok := jsonKey(t.Field(i)); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// structOf follows pointers, slices and maps to the struct they hold.
func structOf(t reflect.Type) reflect.Type {
	for t != nil {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			return t
		default:
			return nil
		}
	}
	return nil
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if k, ok := jsonKey(t.Field(i)); ok && k == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// jsonKey is the key encoding/json reads a field from.
func jsonKey(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return f.Name, true
	}
	return name, true
}
