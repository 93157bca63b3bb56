package bitrix24test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk/sdktest"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type answer struct {
	status int
	body   string
	header http.Header
}

func post(t *testing.T, url, body string) answer {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

func start(t *testing.T, opts ...Option) (*Server, string, *sdktest.Clock) {
	t.Helper()
	clk := sdktest.NewClock(t0)
	s := NewServer(append([]Option{WithClock(clk.Now)}, opts...)...)
	srv := sdktest.Serve(t, s)
	return s, srv.URL + s.WebhookPath(), clk
}

func field(t *testing.T, body string, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return m[key]
}

func TestAuth(t *testing.T) {
	_, base, _ := start(t)
	wrong := strings.Replace(base, DefaultToken, "wrongcode", 1)
	a := post(t, wrong+"crm.contact.list.json", `{}`)
	if a.status != 401 || a.body != `{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}` {
		t.Errorf("wrong code: %d %s", a.status, a.body)
	}
	if a := post(t, base+"no.such.method", `{}`); a.status != 404 || !strings.Contains(a.body, `"ERROR_METHOD_NOT_FOUND"`) {
		t.Errorf("unknown method: %d %s", a.status, a.body)
	}
	// With and without .json.
	for _, m := range []string{"scope", "scope.json"} {
		if a := post(t, base+m, ``); a.status != 200 || string(field(t, a.body, "result")) != `["crm"]` {
			t.Errorf("%s: %d %s", m, a.status, a.body)
		}
	}
}

func TestFindByCommEmptyAndHit(t *testing.T) {
	s, base, _ := start(t)
	a := post(t, base+"crm.duplicate.findbycomm", `{"type":"PHONE","values":["+5511987650001"]}`)
	if got := string(field(t, a.body, "result")); got != "[]" {
		t.Errorf("nothing found: result %s, want [] (an array, as the real API)", got)
	}
	if time := field(t, a.body, "time"); !strings.Contains(string(time), `"date_start":"2026-11-24T15:00:00+03:00"`) {
		t.Errorf("time = %s", time)
	}
	s.SetEmptyObjects(true)
	a = post(t, base+"crm.duplicate.findbycomm", `{"type":"PHONE","values":["+5511987650001"]}`)
	if got := string(field(t, a.body, "result")); got != "{}" {
		t.Errorf("with SetEmptyObjects: %s", got)
	}
	id := s.AddContact(map[string]any{"NAME": "Ana"}, "+55 (11) 98765-0001")
	a = post(t, base+"crm.duplicate.findbycomm", `{"entity_type":"CONTACT","type":"PHONE","values":["+5511987650001"]}`)
	if got, want := string(field(t, a.body, "result")), `{"CONTACT":[`+itoa(id)+`]}`; got != want {
		t.Errorf("hit: %s, want %s", got, want)
	}
	s.SetStringIDs(true)
	a = post(t, base+"crm.duplicate.findbycomm", `{"type":"PHONE","values":["+5511987650001"]}`)
	if got, want := string(field(t, a.body, "result")), `{"CONTACT":["`+itoa(id)+`"]}`; got != want {
		t.Errorf("string ids: %s, want %s", got, want)
	}
	a = post(t, base+"crm.duplicate.findbycomm", `{"values":["+5511987650001"]}`)
	if a.status != 400 || !strings.Contains(a.body, "Parameter 'type' is required.") {
		t.Errorf("no type: %d %s", a.status, a.body)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestAddAndComment(t *testing.T) {
	s, base, _ := start(t)
	a := post(t, base+"crm.contact.add", `{"fields":{"NAME":"Ana","PHONE":[{"VALUE":"+5511987650001","VALUE_TYPE":"WORK"}]}}`)
	var id int
	if err := json.Unmarshal(field(t, a.body, "result"), &id); err != nil || id == 0 {
		t.Fatalf("add: %s", a.body)
	}
	if a := post(t, base+"crm.contact.add", `{"fields":"x"}`); a.status != 400 || a.body != `{"error":"","error_description":"Parameter 'fields' must be array."}` {
		t.Errorf("bad fields: %d %s", a.status, a.body)
	}
	a = post(t, base+"crm.timeline.comment.add", `{"fields":{"ENTITY_ID":"`+itoa(id)+`","ENTITY_TYPE":"contact","COMMENT":"WA in: hi"}}`)
	if a.status != 200 {
		t.Errorf("comment: %d %s", a.status, a.body)
	}
	if a := post(t, base+"crm.timeline.comment.add", `{"FIELDS":{"ENTITY_ID":1,"ENTITY_TYPE":"contact","COMMENT":"x"}}`); a.status != 400 {
		t.Errorf("upper-case FIELDS accepted: %s", a.body)
	}
	if a := post(t, base+"crm.timeline.comment.add", `{"fields":{"ENTITY_ID":999,"ENTITY_TYPE":"contact","COMMENT":"x"}}`); !strings.Contains(a.body, "OWNER_NOT_FOUND") {
		t.Errorf("missing owner: %s", a.body)
	}
	if a := post(t, base+"crm.timeline.comment.add", `{"fields":{"ENTITY_ID":`+itoa(id)+`,"ENTITY_TYPE":"contact","COMMENT":" "}}`); !strings.Contains(a.body, "INVALID_ARG_VALUE") {
		t.Errorf("empty comment: %s", a.body)
	}
	st := s.State()
	if len(st.Contacts) != 1 || len(st.Comments) != 1 || st.Comments[0].Text != "WA in: hi" || st.Contacts[0].Phones[0].Value != "+5511987650001" {
		t.Errorf("state = %+v", st)
	}
}

func TestBatch(t *testing.T) {
	s, base, _ := start(t)
	s.Script(Fault{Method: "crm.duplicate.findbycomm", Error: "ACCESS_DENIED", Description: "Access denied."})
	body := `{"halt":0,"cmd":{
		"f":"crm.duplicate.findbycomm?type=PHONE&values[]=%2B5511",
		"c":"crm.contact.add?fields[NAME]=Ana&fields[PHONE][0][VALUE]=%2B5511987650001&fields[PHONE][0][VALUE_TYPE]=WORK",
		"m":"crm.timeline.comment.add?fields[ENTITY_ID]=$result[c]&fields[ENTITY_TYPE]=contact&fields[COMMENT]=hi%20there",
		"b":"batch?cmd[x]=scope"}}`
	a := post(t, base+"batch", body)
	if a.status != 200 {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	var res struct {
		Result struct {
			Result      map[string]json.RawMessage `json:"result"`
			ResultError map[string]struct {
				Error string `json:"error"`
			} `json:"result_error"`
			ResultTotal json.RawMessage `json:"result_total"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(a.body), &res); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	r := res.Result
	if r.ResultError["f"].Error != "ACCESS_DENIED" || r.ResultError["b"].Error != "ERROR_BATCH_METHOD_NOT_ALLOWED" {
		t.Errorf("result_error = %+v", r.ResultError)
	}
	if len(r.Result) != 2 || string(r.ResultTotal) != "[]" {
		t.Errorf("result = %v, result_total = %s", r.Result, r.ResultTotal)
	}
	cs := s.Comments()
	if len(cs) != 1 || cs[0].Text != "hi there" || cs[0].EntityID != s.Contacts()[0].ID {
		t.Errorf("comments = %+v ($result[c] must be the new contact's id)", cs)
	}

	// halt=1 stops at the first error.
	a = post(t, base+"batch", `{"halt":1,"cmd":{"a":"crm.timeline.comment.add?fields[ENTITY_ID]=999&fields[ENTITY_TYPE]=contact&fields[COMMENT]=x","b":"scope"}}`)
	if strings.Contains(a.body, `"b":`) {
		t.Errorf("halt=1 ran the command after a failure: %s", a.body)
	}
	if !strings.Contains(a.body, `"result":[]`) {
		t.Errorf("empty result section not []: %s", a.body)
	}
}

func TestLeakyBucket(t *testing.T) {
	s, base, clk := start(t, WithRateLimit(2, 5))
	for i := 0; i < 5; i++ {
		if a := post(t, base+"scope", ``); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := post(t, base+"scope", ``)
	if a.status != 503 || a.body != `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}` || a.header.Get("Retry-After") != "" {
		t.Errorf("over the bucket: %d %s (Retry-After %q)", a.status, a.body, a.header.Get("Retry-After"))
	}
	clk.Advance(time.Second) // drains 2
	for i := 0; i < 2; i++ {
		if a := post(t, base+"scope", ``); a.status != 200 {
			t.Errorf("after draining, request %d: %d", i, a.status)
		}
	}
	if a := post(t, base+"scope", ``); a.status != 503 {
		t.Errorf("third after draining 2: %d", a.status)
	}
	st := s.State()
	if st.MaxPerSecond != 6 || st.Rejected != 2 || st.MaxLevel != 5 {
		t.Errorf("state: max %d/s, rejected %d, level %v", st.MaxPerSecond, st.Rejected, st.MaxLevel)
	}
}

func TestFaults(t *testing.T) {
	s, base, _ := start(t, WithRateLimit(0, 0))
	s.FailNext(1, 502)
	if a := post(t, base+"scope", ``); a.status != 502 || !strings.Contains(a.body, "<title>502 Bad Gateway</title>") {
		t.Errorf("502: %d %s", a.status, a.body)
	}
	s.FailEvery(2, 503)
	var codes []int
	for i := 0; i < 4; i++ {
		codes = append(codes, post(t, base+"scope", ``).status)
	}
	if codes[0] == codes[1] || codes[1] == codes[2] || codes[2] == codes[3] {
		t.Errorf("FailEvery(2): %v, want alternating", codes)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	s, base, clk := start(t)
	for i := 0; i < 60; i++ {
		s.AddContact(map[string]any{"NAME": "C", "UF_CRM_TIER": "gold"}, "+55119000000"+itoa(10+i))
	}
	clk.Advance(time.Hour)
	late := s.AddContact(map[string]any{"NAME": "Late"}, "+5511999999999")
	a := post(t, base+"crm.contact.list", `{"order":{"DATE_MODIFY":"ASC","ID":"ASC"},"select":["ID","UF_CRM_TIER","PHONE"]}`)
	if string(field(t, a.body, "total")) != "61" || string(field(t, a.body, "next")) != "50" {
		t.Errorf("first page: total %s next %s", field(t, a.body, "total"), field(t, a.body, "next"))
	}
	var rows []map[string]any
	rows = nil
	_ = json.Unmarshal(field(t, a.body, "result"), &rows)
	if len(rows) != 50 || rows[0]["ID"] != "1" || rows[0]["UF_CRM_TIER"] != "gold" || rows[0]["PHONE"] == nil || rows[0]["NAME"] != nil {
		t.Errorf("rows[0] = %v", rows[0])
	}
	a = post(t, base+"crm.contact.list", `{"start":50}`)
	if field(t, a.body, "next") != nil {
		t.Errorf("last page has next: %s", a.body)
	}
	rows = nil
	_ = json.Unmarshal(field(t, a.body, "result"), &rows)
	if len(rows) != 11 || rows[0]["PHONE"] != nil || rows[0]["DATE_MODIFY"] == nil {
		t.Errorf("default select: %d rows, %v (PHONE must need an explicit select)", len(rows), rows[0])
	}
	a = post(t, base+"crm.contact.list", `{"filter":{">DATE_MODIFY":"2026-11-24T15:30:00+03:00"}}`)
	rows = nil
	_ = json.Unmarshal(field(t, a.body, "result"), &rows)
	if len(rows) != 1 || rows[0]["ID"] != itoa(late) {
		t.Errorf(">DATE_MODIFY: %v", rows)
	}
	a = post(t, base+"crm.contact.list", `{"filter":{">=DATE_MODIFY":"2026-11-24T12:00:00Z","<=DATE_MODIFY":"2026-11-24T12:00:00Z",">ID":"100"}}`)
	rows = nil
	_ = json.Unmarshal(field(t, a.body, "result"), &rows)
	if len(rows) != 10 {
		t.Errorf("equal date and >ID: %d rows", len(rows))
	}
}

func TestPHPQuery(t *testing.T) {
	o, err := parsePHPQuery("fields%5BNAME%5D=Ana+S&fields[PHONE][0][VALUE]=%2B55&values[]=a&values[]=b&order[B]=1&order[A]=2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(o)
	if want := `{"fields":{"NAME":"Ana S","PHONE":[{"VALUE":"+55"}]},"values":["a","b"],"order":{"B":"1","A":"2"}}`; string(b) != want {
		t.Errorf("parsed %s\nwant   %s", b, want)
	}
}
