package hubspottest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk/sdktest"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, h http.Handler, method, path, token, body string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	a := answer{status: rec.Code, header: rec.Header(), raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func newFake(opts ...Option) (*Server, *sdktest.Clock) {
	clk := sdktest.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	return NewServer(append([]Option{WithClock(clk.Now), WithToken("pat-ok")}, opts...)...), clk
}

const phoneSearch = `{"filterGroups":[{"filters":[{"propertyName":"phone","operator":"EQ","value":"+5511987650001"}]},
	{"filters":[{"propertyName":"mobilephone","operator":"EQ","value":"+5511987650001"}]}],"properties":["phone"],"limit":10}`

func TestAuthAndScopes(t *testing.T) {
	s, _ := newFake(WithScopes(ScopeContactsRead))
	for _, tok := range []string{"", "pat-wrong"} {
		a := do(t, s, "POST", PathContactSearch, tok, phoneSearch)
		if a.status != 401 || a.body["category"] != "INVALID_AUTHENTICATION" || !strings.HasPrefix(a.body["message"].(string), "Authentication credentials not found") {
			t.Errorf("token %q: %d %s", tok, a.status, a.raw)
		}
	}
	a := do(t, s, "POST", PathContacts, "pat-ok", `{"properties":{"phone":"+1"}}`)
	if a.status != 403 || a.body["category"] != "MISSING_SCOPES" || !strings.Contains(a.raw, `"requiredScopes":["crm.objects.contacts.write"]`) {
		t.Errorf("missing scope: %d %s", a.status, a.raw)
	}
}

func TestSearchLagAndPhoneMatch(t *testing.T) {
	s, clk := newFake(WithSearchLag(10 * time.Second))
	a := do(t, s, "POST", PathContacts, "pat-ok", `{"properties":{"mobilephone":"+5511987650001","firstname":"Ana"}}`)
	if a.status != 201 || a.body["id"] == "" || a.body["archived"] != false {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	a = do(t, s, "POST", PathContactSearch, "pat-ok", phoneSearch)
	if a.status != 200 || a.raw != `{"results":[],"total":0}` {
		t.Errorf("during the lag: %d %s, want {\"total\":0,\"results\":[]}", a.status, a.raw)
	}
	if a.header.Get("X-HubSpot-RateLimit-Max") != "" || a.header.Get("X-HubSpot-Correlation-Id") == "" {
		t.Errorf("search headers %v: only the correlation id", a.header)
	}
	clk.Advance(10 * time.Second)
	a = do(t, s, "POST", PathContactSearch, "pat-ok", phoneSearch)
	if a.body["total"] != 1.0 || a.body["paging"] != nil {
		t.Errorf("after the lag: %s", a.raw)
	}
	res := a.body["results"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	if _, ok := res["phone"]; !ok || res["phone"] != nil {
		t.Errorf("an unset requested property must come back as null: %v", res)
	}
	// EQ is exact: another format does not match.
	a = do(t, s, "POST", PathContactSearch, "pat-ok", strings.ReplaceAll(phoneSearch, "+5511987650001", "5511987650001"))
	if a.body["total"] != 0.0 {
		t.Errorf("digits without + matched: %s", a.raw)
	}
}

func TestSearchPagingAndCap(t *testing.T) {
	s, _ := newFake()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		s.AddContact(map[string]string{"phone": "+1"}, base.Add(time.Duration(4-i)*time.Second))
	}
	q := `{"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"1767225601000"}]}],
		"sorts":[{"propertyName":"lastmodifieddate","direction":"ASCENDING"}],"limit":2,"after":"1"}`
	a := do(t, s, "POST", PathContactSearch, "pat-ok", q)
	if a.body["total"] != 4.0 || a.body["paging"].(map[string]any)["next"].(map[string]any)["after"] != "3" {
		t.Errorf("page: %s", a.raw)
	}
	got := a.body["results"].([]any)
	if len(got) != 2 || got[0].(map[string]any)["properties"].(map[string]any)["lastmodifieddate"] != "2026-01-01T00:00:02.000Z" {
		t.Errorf("results %v", got)
	}
	a = do(t, s, "POST", PathContactSearch, "pat-ok", `{"after":"10000","limit":10}`)
	if a.status != 400 || a.body["category"] != "VALIDATION_ERROR" {
		t.Errorf("past the cap: %d %s", a.status, a.raw)
	}
	a = do(t, s, "POST", PathContactSearch, "pat-ok", `{"limit":201}`)
	if a.status != 400 {
		t.Errorf("limit 201: %d", a.status)
	}
}

func TestRateLimitAnswers(t *testing.T) {
	s, clk := newFake(WithRateLimit(RateLimit{Per10Seconds: 3, SearchPerSecond: 1, RetryAfter: "1"}))
	for i := range 3 {
		if a := do(t, s, "GET", PathContacts, "pat-ok", ""); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := do(t, s, "GET", PathContacts, "pat-ok", "")
	if a.status != 429 || a.body["policyName"] != PolicyTenSecondly || a.body["errorType"] != "RATE_LIMIT" || a.header.Get("Retry-After") != "1" {
		t.Errorf("4th in 10s: %d %v %s", a.status, a.header, a.raw)
	}
	clk.Advance(10 * time.Second)
	do(t, s, "POST", PathContactSearch, "pat-ok", phoneSearch)
	a = do(t, s, "POST", PathContactSearch, "pat-ok", phoneSearch)
	if a.status != 429 || a.body["message"] != "You have reached your secondly limit." || a.body["category"] != "RATE_LIMITS" || a.header.Get("Retry-After") != "" {
		t.Errorf("2nd search in 1s: %d %v %s", a.status, a.header, a.raw)
	}
	if per10, search := s.MaxObserved(); per10 != 4 || search != 2 {
		t.Errorf("MaxObserved = %d, %d; want 4, 2", per10, search)
	}
	if s.Throttled() != 2 {
		t.Errorf("Throttled = %d", s.Throttled())
	}

	d, _ := newFake(WithRateLimit(RateLimit{Daily: 1}))
	do(t, d, "GET", PathContacts, "pat-ok", "")
	a = do(t, d, "GET", PathContacts, "pat-ok", "")
	if a.status != 429 || a.body["policyName"] != PolicyDaily || a.body["message"] != "You have reached your daily limit." {
		t.Errorf("daily: %d %s", a.status, a.raw)
	}
}

func TestEngagements(t *testing.T) {
	s, _ := newFake()
	id := s.AddContact(map[string]string{"phone": "+1"}, time.Now())
	ok := `{"properties":{"hs_communication_channel_type":"WHATS_APP","hs_communication_logged_from":"CRM","hs_communication_body":"oi","hs_timestamp":"1764000000000"},
		"associations":[{"to":{"id":"` + id + `"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":81}]}]}`
	if a := do(t, s, "POST", PathCommunications, "pat-ok", ok); a.status != 201 {
		t.Fatalf("communication: %d %s", a.status, a.raw)
	}
	if c := s.Communications(); len(c) != 1 || c[0].Properties["hs_timestamp"] != "2025-11-24T16:00:00.000Z" || c[0].Associations[0].ToID != id {
		t.Errorf("stored %+v", c)
	}
	for name, body := range map[string]string{
		"bad channel":     strings.Replace(ok, "WHATS_APP", "TELEGRAM", 1),
		"logged from":     strings.Replace(ok, `"CRM"`, `"API"`, 1),
		"wrong assoc":     strings.Replace(ok, "81", "202", 1),
		"missing contact": strings.Replace(ok, `"id":"`+id+`"`, `"id":"1"`, 1),
		"unknown prop":    strings.Replace(ok, `"hs_communication_body"`, `"body"`, 1),
	} {
		if a := do(t, s, "POST", PathCommunications, "pat-ok", body); a.status != 400 || a.body["category"] != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
	}
	if a := do(t, s, "POST", PathNotes, "pat-ok", `{"properties":{"hs_note_body":"x"}}`); a.status != 400 {
		t.Errorf("note without hs_timestamp: %d", a.status)
	}
	a := do(t, s, "POST", PathContacts, "pat-ok", `{"properties":{"email":"a@b.c"}}`)
	a = do(t, s, "POST", PathContacts, "pat-ok", `{"properties":{"email":"A@b.c"}}`)
	if a.status != 409 || !strings.HasPrefix(a.body["message"].(string), "Contact already exists. Existing ID: ") {
		t.Errorf("duplicate email: %d %s", a.status, a.raw)
	}
}

func TestFaultsAndPrefix(t *testing.T) {
	s, _ := newFake()
	s.Script(Fault{Status: 502, Method: "POST", Path: PathContacts, AfterProcessing: true})
	h := http.StripPrefix("/sandbox/hubspot", s)
	// The search is not the scripted path: it passes.
	if a := do(t, h, "POST", "/sandbox/hubspot"+PathContactSearch, "pat-ok", phoneSearch); a.status != 200 {
		t.Errorf("search: %d", a.status)
	}
	a := do(t, h, "POST", "/sandbox/hubspot"+PathContacts, "pat-ok", `{"properties":{"phone":"+1"}}`)
	if a.status != 502 || !strings.Contains(a.raw, "<html>") || len(s.Contacts()) != 1 {
		t.Errorf("lost answer: %d %s, %d contacts", a.status, a.raw, len(s.Contacts()))
	}
	s.FailEvery(2, Fault{Status: 429})
	var got []int
	for range 4 {
		got = append(got, do(t, s, "GET", PathContacts, "pat-ok", "").status)
	}
	if want := []int{200, 429, 200, 429}; !equal(got, want) {
		t.Errorf("FailEvery(2): %v", got)
	}
	snap, err := json.Marshal(s.Snapshot())
	if err != nil || !strings.Contains(string(snap), `"contacts"`) {
		t.Errorf("snapshot %s %v", snap, err)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
