package templates

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const orderUpdate = `[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"Hi {{1}}, order #{{2}} ships {{1}}."},` +
	`{"type":"FOOTER","text":"Shop"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://shop.example/t/{{1}}"},` +
	`{"type":"QUICK_REPLY","text":"Talk to us"},{"type":"PHONE_NUMBER","text":"Call","phone_number":"+15550001"}]}]`

func tpl(t *testing.T, name, comps, format string) *Template {
	t.Helper()
	p, err := Derive(json.RawMessage(comps))
	if err != nil {
		t.Fatal(err)
	}
	return &Template{Name: name, Language: "en_US", Status: "APPROVED", Category: "UTILITY", ParameterFormat: format,
		Components: json.RawMessage(comps), Parameters: p}
}

func TestDerive(t *testing.T) {
	p, err := Derive(json.RawMessage(orderUpdate))
	if err != nil {
		t.Fatal(err)
	}
	want := &Parameters{Header: "image", Body: []string{"1", "2"}, Buttons: []Button{
		{Index: 0, Type: "url", Text: "Track", Dynamic: true},
		{Index: 1, Type: "quick_reply", Text: "Talk to us"},
		{Index: 2, Type: "phone_number", Text: "Call"},
	}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	named, _ := Derive(json.RawMessage(`[{"type":"HEADER","format":"TEXT","text":"Hi {{ first_name }}"},{"type":"BODY","text":"{{day}} at {{time}}, {{day}}"}]`))
	if named.Header != "text" || !reflect.DeepEqual(named.Body, []string{"day", "time"}) {
		t.Errorf("named: %+v", named)
	}
	if _, err := Derive(json.RawMessage(`{"type":"BODY"}`)); err == nil {
		t.Error("components that are not a list: want an error")
	}
}

func comps(list ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(list))
	for i, c := range list {
		out[i] = json.RawMessage(c)
	}
	return out
}

func TestCheck(t *testing.T) {
	order := tpl(t, "order_update", orderUpdate, "POSITIONAL")
	auth := tpl(t, "otp", `[{"type":"BODY","text":"*{{1}}* is your code."},{"type":"BUTTONS","buttons":[{"type":"OTP","otp_type":"COPY_CODE","text":"Copy code"}]}]`, "")
	named := tpl(t, "booking", `[{"type":"BODY","text":"See you {{day}} at {{time}}"}]`, "NAMED")
	plain := tpl(t, "hello", `[{"type":"BODY","text":"Hello!"}]`, "")
	coupon := tpl(t, "coupon", `[{"type":"BODY","text":"Use it"},{"type":"BUTTONS","buttons":[{"type":"COPY_CODE","example":"X"}]}]`, "")
	header := `{"type":"header","parameters":[{"type":"image","image":{"link":"https://x/y.jpg"}}]}`
	body2 := `{"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"42"}]}`
	urlBtn := `{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"42"}]}`
	tests := []struct {
		name  string
		t     *Template
		comps []json.RawMessage
		want  string // substring of the problem; "" for none
	}{
		{"complete", order, comps(header, body2, urlBtn), ""},
		{"with the quick reply payload", order, comps(header, body2, urlBtn, `{"type":"button","sub_type":"quick_reply","index":1,"parameters":[{"type":"payload","payload":"talk"}]}`), ""},
		{"body one short", order, comps(header, `{"type":"body","parameters":[{"type":"text","text":"Ana"}]}`, urlBtn), "the body takes 2 parameter(s) ({{1}}, {{2}}); the message gives 1"},
		{"no body", order, comps(header, urlBtn), "the message gives 0"},
		{"body parameter not text", order, comps(header, `{"type":"body","parameters":[{"type":"image","image":{"id":"1"}},{"type":"text","text":"42"}]}`, urlBtn), `body parameter 1 is of type "image"`},
		{"empty text", order, comps(header, `{"type":"body","parameters":[{"type":"text","text":""},{"type":"text","text":"42"}]}`, urlBtn), "body parameter 1 has no text"},
		{"header missing", order, comps(body2, urlBtn), "the header takes one image parameter; the message gives 0"},
		{"header of the wrong media", order, comps(`{"type":"header","parameters":[{"type":"video","video":{"id":"9"}}]}`, body2, urlBtn), `the header takes a image; the message gives a "video" parameter`},
		{"header image without id or link", order, comps(`{"type":"header","parameters":[{"type":"image","image":{}}]}`, body2, urlBtn), "needs an id"},
		{"dynamic url button missing", order, comps(header, body2), `button 0 (url "Track") needs a parameter`},
		{"button of another type", order, comps(header, body2, `{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"x"}]}`), `button 0 is a url button; the message's component has sub_type "quick_reply"`},
		{"button index out of range", order, comps(header, body2, urlBtn, `{"type":"button","sub_type":"url","index":"7","parameters":[]}`), "names button 7, but the template has 3 button(s)"},
		{"phone button with a parameter", order, comps(header, body2, urlBtn, `{"type":"button","sub_type":"phone_number","index":"2","parameters":[{"type":"text","text":"x"}]}`), "takes no parameters"},
		{"no parameters, none given", plain, nil, ""},
		{"no parameters, one given", plain, comps(`{"type":"body","parameters":[{"type":"text","text":"x"}]}`), "the body takes no parameters; the message gives 1"},
		{"header where there is none", plain, comps(`{"type":"header","parameters":[{"type":"text","text":"x"}]}`), "the header takes no parameters"},
		{"authentication", auth, comps(`{"type":"body","parameters":[{"type":"text","text":"123456"}]}`, `{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"123456"}]}`), ""},
		{"authentication without the button", auth, comps(`{"type":"body","parameters":[{"type":"text","text":"123456"}]}`), "needs a parameter"},
		{"named", named, comps(`{"type":"body","parameters":[{"type":"text","parameter_name":"day","text":"Sat"},{"type":"text","parameter_name":"time","text":"7pm"}]}`), ""},
		{"named wrong name", named, comps(`{"type":"body","parameters":[{"type":"text","parameter_name":"day","text":"Sat"},{"type":"text","parameter_name":"hour","text":"7pm"}]}`), `body parameter 2 is named "hour"`},
		{"coupon", coupon, comps(`{"type":"button","sub_type":"copy_code","index":0,"parameters":[{"type":"coupon_code","coupon_code":"SAVE10"}]}`), ""},
		{"coupon as text", coupon, comps(`{"type":"button","sub_type":"copy_code","index":0,"parameters":[{"type":"text","text":"SAVE10"}]}`), "takes a coupon_code parameter"},
		{"not an object", plain, comps(`[1]`), "component 0 is not a template component object"},
		{"unknown components", &Template{Name: "x", Language: "en"}, comps(`{"type":"body","parameters":[{"type":"text","text":"x"}]}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Check(tt.t, tt.comps)
			switch {
			case tt.want == "" && p != nil:
				t.Fatalf("unexpected problem: %s", p.Message)
			case tt.want != "" && p == nil:
				t.Fatalf("no problem; want %q", tt.want)
			case tt.want != "" && (!strings.Contains(p.Message, tt.want) || p.Code != CodeParameters):
				t.Fatalf("problem %s %q; want %s containing %q", p.Code, p.Message, CodeParameters, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	v := []Template{
		{Name: "promo", Language: "en_US", Status: "APPROVED"},
		{Name: "promo", Language: "pt_BR", Status: "PAUSED", Reason: "LOW_QUALITY"},
		{Name: "promo", Language: "es", Status: "DISABLED"},
		{Name: "promo", Language: "fr", Status: "REJECTED", Reason: "INVALID_FORMAT"},
		{Name: "promo", Language: "de", Status: "FLAGGED"},
	}
	tests := []struct {
		versions []Template
		known    bool
		lang     string
		code     string
		found    bool
	}{
		{v, true, "en_US", "", true},
		{v, true, "en-US", "", true}, // the webhook's spelling
		{v, true, "de", "", true},    // flagged is still sendable
		{v, true, "pt_BR", CodePaused, true},
		{v, true, "es", CodeDisabled, true},
		{v, true, "fr", CodeNotApproved, true},
		{v, true, "it", CodeLanguage, false},
		{v, false, "it", "", false}, // not fetched: another language may exist
		{nil, true, "en_US", CodeUnknown, false},
		{nil, false, "en_US", "", false},
		{v[1:2], false, "pt_BR", CodePaused, true}, // a webhook's pause counts before any fetch
	}
	for _, tt := range tests {
		got, p := Resolve(tt.versions, tt.known, "promo", tt.lang)
		code := ""
		if p != nil {
			code = p.Code
		}
		if code != tt.code || (got != nil) != tt.found {
			t.Errorf("%s known=%v: code %q found %v; want %q %v (%v)", tt.lang, tt.known, code, got != nil, tt.code, tt.found, p)
		}
	}
	_, p := Resolve(v, true, "promo", "it")
	if !strings.Contains(p.Message, "de, en_US, es, fr, pt_BR") {
		t.Errorf("language problem should list the languages: %s", p.Message)
	}
}

func TestFromWebhook(t *testing.T) {
	tests := []struct {
		typ, raw string
		want     Update
		ok       bool
	}{
		{EventStatus, `{"event":"PAUSED","message_template_id":1689556908129832,"message_template_name":"order_confirmation","message_template_language":"en-US","reason":"NONE","message_template_category":"utility"}`,
			Update{ID: "1689556908129832", Name: "order_confirmation", Language: "en_US", Status: "PAUSED", Reason: "NONE", Category: "UTILITY"}, true},
		{EventStatus, `{"event":"REINSTATED","message_template_name":"x","message_template_language":"pt_BR"}`,
			Update{Name: "x", Language: "pt_BR", Status: "APPROVED"}, true},
		{EventStatus, `{"event":"DISABLED","message_template_name":"x","message_template_language":"es","other_info":{"title":"FIRST_PAUSE","description":"paused for 3 hours"}}`,
			Update{Name: "x", Language: "es", Status: "DISABLED", Reason: "FIRST_PAUSE: paused for 3 hours"}, true},
		{EventStatus, `{"event":"SOMETHING_NEW","message_template_name":"x","message_template_language":"es"}`, Update{}, false},
		{EventCategory, `{"message_template_id":5,"message_template_name":"x","message_template_language":"en-US","previous_category":"UTILITY","new_category":"MARKETING"}`,
			Update{ID: "5", Name: "x", Language: "en_US", Category: "MARKETING"}, true},
		{EventQuality, `{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":7,"message_template_name":"x","message_template_language":"en_US"}`,
			Update{ID: "7", Name: "x", Language: "en_US", Quality: "RED"}, true},
		{EventStatus, `{"event":"PAUSED"}`, Update{}, false},
		{"whatsapp.account_update", `{"event":"PAUSED","message_template_name":"x","message_template_language":"es"}`, Update{}, false},
		{EventStatus, `[1]`, Update{}, false},
	}
	for _, tt := range tests {
		got, ok := FromWebhook(tt.typ, json.RawMessage(tt.raw))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s %s: %+v %v; want %+v %v", tt.typ, tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}
