package bitrix24test

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// pageSize is crm.*.list's fixed page size.
const pageSize = 50

// maxBatch is how many commands one batch may hold.
const maxBatch = 50

// response is a method's answer before it is wrapped in the envelope.
type response struct {
	result any
	total  *int
	next   *int
}

func methodError(code, description string) *apiError {
	return &apiError{status: 400, code: code, description: description}
}

// dispatch runs one method; the caller holds s.mu.
func (s *Server) dispatch(method string, p *object) (response, *apiError) {
	if f, ok := s.faults.Next(func(f Fault) bool { return f.Method != "" && strings.EqualFold(f.Method, method) }); ok {
		return response{}, f.apiError(400)
	}
	switch method {
	case "scope":
		scopes := make([]any, len(s.scopes))
		for i, sc := range s.scopes {
			scopes[i] = sc
		}
		return response{result: scopes}, nil
	case "batch":
		return response{}, &apiError{status: 405, code: "ERROR_BATCH_METHOD_NOT_ALLOWED", description: "Method is not allowed for batch usage"}
	}
	if strings.HasPrefix(method, "crm.") && !s.hasScope("crm") {
		return response{}, canonical(403)
	}
	switch method {
	case "crm.duplicate.findbycomm":
		return s.findByComm(p)
	case "crm.contact.add":
		return s.add(s.contacts, p, false)
	case "crm.lead.add":
		return s.add(s.leads, p, true)
	case "crm.contact.update":
		return s.update(p)
	case "crm.contact.get":
		return s.get(p)
	case "crm.contact.list":
		return s.list(p)
	case "crm.contact.fields":
		return s.fields()
	case "crm.timeline.comment.add":
		return s.commentAdd(p)
	}
	return response{}, &apiError{status: 404, code: "ERROR_METHOD_NOT_FOUND", description: "Method not found!"}
}

func (s *Server) hasScope(want string) bool {
	for _, sc := range s.scopes {
		if sc == want {
			return true
		}
	}
	return false
}

// digits is how the portal compares phone numbers: their digits, an
// international "00" prefix dropped.
func digits(v string) string { return strings.TrimPrefix(fakeapi.Digits(v), "00") }

func (s *Server) findByComm(p *object) (response, *apiError) {
	typ, _ := p.get("type")
	if str(typ) == "" {
		return response{}, methodError("Communication type is not defined", "Parameter 'type' is required.")
	}
	if !strings.EqualFold(str(typ), "PHONE") && !strings.EqualFold(str(typ), "EMAIL") {
		return response{}, methodError("", "Communication type '"+str(typ)+"' is not supported in current context.")
	}
	raw, _ := p.get("values")
	values := list(raw)
	if len(values) == 0 {
		return response{}, methodError("", "Parameter 'values' must be array.")
	}
	if len(values) > 20 {
		return response{}, methodError("", "Too many communications. Maximum 20 are allowed.")
	}
	want := map[string]bool{}
	for _, v := range values {
		if d := digits(str(v)); d != "" {
			want[d] = true
		}
	}
	et, _ := p.get("entity_type")
	kinds := []struct {
		name string
		m    map[int]*Record
	}{{"LEAD", s.leads}, {"CONTACT", s.contacts}}
	out := newObject()
	for _, k := range kinds {
		if str(et) != "" && !strings.EqualFold(str(et), k.name) {
			continue
		}
		var ids []int
		for id, r := range k.m {
			for _, ph := range r.Phones {
				if want[digits(ph.Value)] {
					ids = append(ids, id)
					break
				}
			}
		}
		if len(ids) == 0 {
			continue
		}
		sort.Ints(ids)
		arr := make([]any, len(ids))
		for i, id := range ids {
			arr[i] = s.id(id)
		}
		out.set(k.name, arr)
	}
	if len(out.keys) == 0 {
		return response{result: s.empty()}, nil
	}
	return response{result: out}, nil
}

func fieldsParam(p *object, exact bool) (*object, *apiError) {
	var v any
	var ok bool
	if exact {
		v, ok = p.vals["fields"]
	} else {
		v, ok = p.get("fields")
	}
	f, isObj := v.(*object)
	if !ok || !isObj {
		return nil, methodError("", "Parameter 'fields' must be array.")
	}
	return f, nil
}

func (s *Server) add(m map[int]*Record, p *object, lead bool) (response, *apiError) {
	f, e := fieldsParam(p, false)
	if e != nil {
		return response{}, e
	}
	fields := map[string]any{}
	var phones []Phone
	for _, k := range f.keys {
		v := f.vals[k]
		if strings.EqualFold(k, "PHONE") {
			for _, item := range list(v) {
				o, ok := item.(*object)
				if !ok {
					continue
				}
				val, _ := o.get("VALUE")
				vt, _ := o.get("VALUE_TYPE")
				if str(val) == "" {
					continue
				}
				phones = append(phones, Phone{Value: str(val), ValueType: str(vt)})
			}
			continue
		}
		if _, isObj := v.(*object); isObj {
			continue
		}
		fields[strings.ToUpper(k)] = str(v)
	}
	if !lead && str(fields["NAME"]) == "" && str(fields["LAST_NAME"]) == "" {
		return response{}, methodError("", "One of the fields must be filled: First name, Last name.")
	}
	id := s.addRecord(m, fields, nil)
	r := m[id]
	for _, ph := range phones {
		ph.ID = s.newID()
		if ph.ValueType == "" {
			ph.ValueType = "WORK"
		}
		r.Phones = append(r.Phones, ph)
	}
	if lead && str(r.Fields["TITLE"]) == "" {
		r.Fields["TITLE"] = fmt.Sprintf("Lead #%d", id)
	}
	return response{result: s.id(id)}, nil
}

func intParam(v any) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(str(v)))
	return n, err == nil
}

// contactParam is the contact the id parameter names; Bitrix24 answers an
// unknown one with a bare "Not found".
func (s *Server) contactParam(p *object) (*Record, *apiError) {
	idv, _ := p.get("id")
	id, ok := intParam(idv)
	if r := s.contacts[id]; ok && r != nil {
		return r, nil
	}
	return nil, methodError("", "Not found")
}

func (s *Server) update(p *object) (response, *apiError) {
	r, e := s.contactParam(p)
	if e != nil {
		return response{}, e
	}
	f, e := fieldsParam(p, false)
	if e != nil {
		return response{}, e
	}
	for _, k := range f.keys {
		if _, isObj := f.vals[k].(*object); isObj {
			continue
		}
		if strings.EqualFold(k, "PHONE") {
			continue
		}
		r.Fields[strings.ToUpper(k)] = str(f.vals[k])
	}
	r.Modified = s.now().Truncate(time.Second)
	return response{result: true}, nil
}

func (s *Server) get(p *object) (response, *apiError) {
	r, e := s.contactParam(p)
	if e != nil {
		return response{}, e
	}
	return response{result: s.render(r, nil, true)}, nil
}

// standardFields are what '*' selects besides the user fields.
var standardFields = []string{"NAME", "LAST_NAME", "SECOND_NAME", "TYPE_ID", "SOURCE_ID", "SOURCE_DESCRIPTION", "POST", "COMMENTS", "OPENED", "EXPORT", "ASSIGNED_BY_ID"}

// render shows a record as crm.contact.list does: ids and scalars as
// strings, dates in the portal's zone, PHONE only when asked for.
func (s *Server) render(r *Record, sel []string, all bool) *object {
	o := newObject()
	o.set("ID", fmt.Sprint(r.ID))
	want := map[string]bool{}
	star, ufStar, phone := all, all, all
	for _, f := range sel {
		switch f = strings.ToUpper(f); f {
		case "*":
			star = true
		case "UF_*":
			ufStar = true
		case "PHONE":
			phone = true
		default:
			want[f] = true
		}
	}
	if len(sel) == 0 {
		star, ufStar = true, true
	}
	if star {
		for _, f := range standardFields {
			want[f] = true
		}
		want["DATE_CREATE"], want["DATE_MODIFY"], want["HAS_PHONE"] = true, true, true
	}
	if ufStar {
		for k := range r.Fields {
			if strings.HasPrefix(k, "UF_") {
				want[k] = true
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		switch k {
		case "ID":
		case "DATE_CREATE":
			o.set(k, r.Created.In(s.tz).Format(time.RFC3339))
		case "DATE_MODIFY":
			o.set(k, r.Modified.In(s.tz).Format(time.RFC3339))
		case "HAS_PHONE":
			o.set(k, map[bool]string{true: "Y", false: "N"}[len(r.Phones) > 0])
		default:
			v, ok := r.Fields[k]
			if !ok || str(v) == "" {
				o.set(k, s.emptyField())
			} else {
				o.set(k, renderValue(v))
			}
		}
	}
	if phone && len(r.Phones) > 0 {
		arr := make([]any, len(r.Phones))
		for i, ph := range r.Phones {
			arr[i] = map[string]any{"ID": fmt.Sprint(ph.ID), "VALUE_TYPE": ph.ValueType, "VALUE": ph.Value, "TYPE_ID": "PHONE"}
		}
		o.set("PHONE", arr)
	}
	return o
}

// renderValue shows a stored value the way PHP would: numbers as strings.
func renderValue(v any) any {
	switch t := v.(type) {
	case []any, []string, bool:
		return t
	}
	return str(v)
}

// filterTerm is one condition of a list filter.
type filterTerm struct {
	op, field string
	values    []string
}

var filterOps = []string{">=", "<=", "!=", "!@", "=%", "%=", ">", "<", "=", "!", "@", "%"}

func parseFilter(v any) []filterTerm {
	o, ok := v.(*object)
	if !ok {
		return nil
	}
	var out []filterTerm
	for _, k := range o.keys {
		op, field := "=", k
		for _, cand := range filterOps {
			if strings.HasPrefix(k, cand) {
				op, field = cand, k[len(cand):]
				break
			}
		}
		t := filterTerm{op: op, field: strings.ToUpper(field)}
		for _, item := range list(o.vals[k]) {
			t.values = append(t.values, str(item))
		}
		if len(t.values) == 0 {
			t.values = []string{""}
		}
		out = append(out, t)
	}
	return out
}

// parseDate reads a filter date the ways Bitrix24 accepts them; a date
// without a zone is in the portal's zone.
func (s *Server) parseDate(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "02.01.2006 15:04:05", "2006-01-02", "02.01.2006"} {
		if t, err := time.ParseInLocation(layout, v, s.tz); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// cmp compares a record's field with a filter value: -1, 0, 1.
func (s *Server) cmp(r *Record, field, value string) (int, bool) {
	switch field {
	case "ID":
		n, ok := intParam(value)
		if !ok {
			return 0, false
		}
		return compareInts(r.ID, n), true
	case "DATE_MODIFY", "DATE_CREATE":
		t, ok := s.parseDate(value)
		if !ok {
			return 0, false
		}
		have := r.Modified
		if field == "DATE_CREATE" {
			have = r.Created
		}
		t = t.Truncate(time.Second)
		switch {
		case have.Before(t):
			return -1, true
		case have.After(t):
			return 1, true
		}
		return 0, true
	}
	return strings.Compare(str(r.Fields[field]), value), true
}

func compareInts(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Server) matches(r *Record, terms []filterTerm) bool {
	for _, t := range terms {
		if t.field == "PHONE" {
			// Multi-fields match exactly only.
			found := false
			for _, ph := range r.Phones {
				for _, v := range t.values {
					if ph.Value == v {
						found = true
					}
				}
			}
			if found == (t.op == "!" || t.op == "!=") {
				return false
			}
			continue
		}
		ok := false
		for _, v := range t.values {
			c, valid := s.cmp(r, t.field, v)
			if !valid {
				continue
			}
			switch t.op {
			case ">":
				ok = ok || c > 0
			case ">=":
				ok = ok || c >= 0
			case "<":
				ok = ok || c < 0
			case "<=":
				ok = ok || c <= 0
			case "=", "@":
				ok = ok || c == 0
			case "!", "!=", "!@":
				ok = ok || c != 0
			case "%", "=%", "%=":
				ok = ok || strings.Contains(strings.ToLower(str(r.Fields[t.field])), strings.ToLower(strings.Trim(v, "%")))
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *Server) list(p *object) (response, *apiError) {
	filter, _ := p.get("filter")
	terms := parseFilter(filter)
	var matched []*Record
	for _, r := range s.contacts {
		if s.matches(r, terms) {
			matched = append(matched, r)
		}
	}
	orderV, _ := p.get("order")
	var order []filterTerm
	if o, ok := orderV.(*object); ok {
		for _, k := range o.keys {
			order = append(order, filterTerm{field: strings.ToUpper(k), op: strings.ToUpper(str(o.vals[k]))})
		}
	}
	sort.SliceStable(matched, func(i, j int) bool {
		for _, o := range order {
			c := s.compareRecords(matched[i], matched[j], o.field)
			if o.op == "DESC" {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return matched[i].ID < matched[j].ID
	})
	start := 0
	if v, ok := p.get("start"); ok {
		if n, ok := intParam(v); ok && n > 0 {
			start = n
		}
	}
	var sel []string
	if v, ok := p.get("select"); ok {
		for _, f := range list(v) {
			sel = append(sel, str(f))
		}
	}
	total := len(matched)
	page := []any{}
	for i := start; i < total && i < start+pageSize; i++ {
		page = append(page, s.render(matched[i], sel, false))
	}
	out := response{result: page, total: &total}
	if start+pageSize < total {
		n := start + pageSize
		out.next = &n
	}
	return out, nil
}

func (s *Server) compareRecords(a, b *Record, field string) int {
	switch field {
	case "ID":
		return compareInts(a.ID, b.ID)
	case "DATE_MODIFY":
		return a.Modified.Compare(b.Modified)
	case "DATE_CREATE":
		return a.Created.Compare(b.Created)
	}
	return strings.Compare(str(a.Fields[field]), str(b.Fields[field]))
}

// fields describes the contact fields as crm.contact.fields does: the
// standard ones, and each user field with its type; list fields carry
// their options as items [{ID, VALUE}].
func (s *Server) fields() (response, *apiError) {
	out := newObject()
	describe := func(typ, title string, multiple bool) *object {
		o := newObject()
		o.set("type", typ)
		o.set("isRequired", false)
		o.set("isReadOnly", false)
		o.set("isImmutable", false)
		o.set("isMultiple", multiple)
		o.set("isDynamic", false)
		o.set("title", title)
		return o
	}
	out.set("ID", describe("integer", "ID", false))
	for _, f := range standardFields {
		typ := "string"
		if f == "ASSIGNED_BY_ID" {
			typ = "user"
		}
		out.set(f, describe(typ, f, false))
	}
	out.set("DATE_CREATE", describe("datetime", "Created", false))
	out.set("DATE_MODIFY", describe("datetime", "Modified", false))
	out.set("PHONE", describe("crm_multifield", "Phone", true))
	uf := map[string]bool{}
	for _, r := range s.contacts {
		for k := range r.Fields {
			if strings.HasPrefix(k, "UF_") {
				uf[k] = true
			}
		}
	}
	for k := range s.lists {
		uf[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(uf)) {
		opts, isList := s.lists[k]
		typ := "string"
		if isList {
			typ = "enumeration"
		}
		d := describe(typ, k, false)
		d.set("isDynamic", true)
		if isList {
			items := make([]any, len(opts))
			for i, o := range opts {
				items[i] = map[string]string{"ID": o.ID, "VALUE": o.Value}
			}
			d.set("items", items)
		}
		out.set(k, d)
	}
	return response{result: out}, nil
}

func (s *Server) commentAdd(p *object) (response, *apiError) {
	// Since crm 23.100.0 only the lower-case key works.
	f, e := fieldsParam(p, true)
	if e != nil {
		return response{}, e
	}
	idv, _ := f.get("ENTITY_ID")
	typ, _ := f.get("ENTITY_TYPE")
	text, _ := f.get("COMMENT")
	id, ok := intParam(idv)
	if !ok {
		return response{}, methodError("INVALID_ARG_VALUE", "Invalid value of parameter: ENTITY_ID")
	}
	var m map[int]*Record
	switch strings.ToLower(str(typ)) {
	case "contact":
		m = s.contacts
	case "lead":
		m = s.leads
	default:
		return response{}, methodError("INVALID_ARG_VALUE", "Invalid value of parameter: ENTITY_TYPE")
	}
	if _, ok := m[id]; !ok {
		return response{}, methodError("OWNER_NOT_FOUND", "Owner entity is not found.")
	}
	if strings.TrimSpace(str(text)) == "" {
		return response{}, methodError("INVALID_ARG_VALUE", "Empty comment.")
	}
	files, e := s.commentFiles(f)
	if e != nil {
		return response{}, e
	}
	c := Comment{ID: s.newID(), EntityType: strings.ToLower(str(typ)), EntityID: id, Text: str(text), Created: s.now(), Files: files}
	s.comments = append(s.comments, c)
	return response{result: s.id(c.ID)}, nil
}

// resultRef is a batch command's reference to an earlier result.
var resultRef = regexp.MustCompile(`\$result\[([^\]]+)\]((?:\[[^\]]*\])*)`)

func (s *Server) batch(p *object, start time.Time) (response, []string) {
	cmdV, _ := p.get("cmd")
	haltV, _ := p.get("halt")
	halt := truthy(haltV)
	var keys []string
	var cmds []string
	switch c := cmdV.(type) {
	case *object:
		for _, k := range c.keys {
			keys = append(keys, k)
			cmds = append(cmds, str(c.vals[k]))
		}
	case []any:
		for i, v := range c {
			keys = append(keys, strconv.Itoa(i))
			cmds = append(cmds, str(v))
		}
	}
	results, errs := newObject(), newObject()
	totals, nexts, times := newObject(), newObject(), newObject()
	raw := map[string]any{}
	var methods []string
	for i, k := range keys {
		cmd := cmds[i]
		method, query, _ := strings.Cut(cmd, "?")
		method = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(method), ".json"))
		methods = append(methods, method)
		var e *apiError
		var out response
		if i >= maxBatch {
			e = &apiError{code: "ERROR_BATCH_LENGTH_EXCEEDED", description: "Max batch length exceeded"}
		} else {
			query = resultRef.ReplaceAllStringFunc(query, func(ref string) string {
				m := resultRef.FindStringSubmatch(ref)
				v := raw[m[1]]
				for _, seg := range splitPHPKey("x" + m[2])[1:] {
					switch t := v.(type) {
					case *object:
						v, _ = t.get(seg)
					case []any:
						n, _ := strconv.Atoi(seg)
						if n >= 0 && n < len(t) {
							v = t[n]
						} else {
							v = nil
						}
					default:
						v = nil
					}
				}
				return url.QueryEscape(str(v))
			})
			params, err := parsePHPQuery(query)
			if err != nil {
				e = methodError("", err.Error())
			} else if method == "batch" {
				e = &apiError{code: "ERROR_BATCH_METHOD_NOT_ALLOWED", description: "Method is not allowed for batch usage"}
			} else {
				out, e = s.dispatch(method, params)
			}
		}
		if e != nil {
			errs.set(k, map[string]string{"error": e.code, "error_description": e.description})
			if halt {
				break
			}
			continue
		}
		results.set(k, out.result)
		raw[k] = out.result
		if out.total != nil {
			totals.set(k, *out.total)
		}
		if out.next != nil {
			nexts.set(k, *out.next)
		}
		times.set(k, s.timeInfo(start))
	}
	section := func(o *object) any {
		if len(o.keys) == 0 {
			return s.empty()
		}
		return listify(o) // PHP shows keys 0..n-1 as a list
	}
	res := newObject()
	res.set("result", section(results))
	res.set("result_error", section(errs))
	res.set("result_total", section(totals))
	res.set("result_next", section(nexts))
	res.set("result_time", section(times))
	return response{result: res}, methods
}
