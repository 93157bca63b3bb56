package graphtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
)

func catalog(n int) []graphtest.Template {
	var out []graphtest.Template
	for i := range n {
		out = append(out, graphtest.Template{ID: fmt.Sprint(1000 + i), Name: fmt.Sprintf("t%02d", i), Language: "en_US",
			Status: "APPROVED", Category: "UTILITY", Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}"}]`)})
	}
	return out
}

func TestTemplatesPagedWithCursors(t *testing.T) {
	for _, tt := range []struct{ templates, page, wantPages int }{
		{7, 3, 3}, {6, 3, 2}, {0, 3, 1}, {1, 100, 1},
	} {
		fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithCatalog(catalog(tt.templates)...))
		ts := httptest.NewServer(fake)
		c := graph.New(ts.URL+"/v23.0", "tok", nil)
		got, err := c.Templates(context.Background(), "102290129340398", tt.page)
		ts.Close()
		if err != nil {
			t.Fatalf("%d templates by %d: %v", tt.templates, tt.page, err)
		}
		if len(got) != tt.templates || fake.TemplateListings() != tt.wantPages {
			t.Fatalf("%d templates by %d: got %d in %d pages, want %d pages", tt.templates, tt.page, len(got), fake.TemplateListings(), tt.wantPages)
		}
		for i, g := range got {
			if g.Name != fmt.Sprintf("t%02d", i) || g.Language != "en_US" || g.Status != "APPROVED" || !strings.Contains(string(g.Components), "{{1}}") {
				t.Fatalf("template %d: %+v", i, g)
			}
		}
	}
}

func TestTemplatesErrors(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithCatalog(catalog(2)...))
	ts := httptest.NewServer(fake)
	defer ts.Close()
	_, err := graph.New(ts.URL, "wrong", nil).Templates(context.Background(), "102290129340398", 0)
	if _, code := graph.Classify(err); code != "190" {
		t.Errorf("bad token: %v (code %s)", err, code)
	}
	_, err = graph.New(ts.URL, "tok", nil).Templates(context.Background(), "999", 0)
	if err == nil || !strings.Contains(err.Error(), "999") {
		t.Errorf("unknown WABA: %v", err)
	}
	if _, err := graph.New(ts.URL, "tok", nil).Templates(context.Background(), "", 0); err == nil {
		t.Error("no WABA: want an error")
	}
}

func TestTemplateSendsHeldAgainstCatalog(t *testing.T) {
	cat := catalog(1)
	cat = append(cat, graphtest.Template{Name: "paused", Language: "en_US", Status: "PAUSED"},
		graphtest.Template{Name: "gone", Language: "en_US", Status: "DISABLED"})
	fake := graphtest.NewServer(graphtest.WithCatalog(cat...))
	body := func(name, lang string, params int) string {
		ps := make([]string, params)
		for i := range ps {
			ps[i] = `{"type":"text","text":"x"}`
		}
		return `{"messaging_product":"whatsapp","to":"+5511987650001","type":"template","template":{"name":"` + name +
			`","language":{"code":"` + lang + `"},"components":[{"type":"body","parameters":[` + strings.Join(ps, ",") + `]}]}}`
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{body("t00", "en_US", 1), 0},
		{body("t00", "en_US", 2), graph.ErrTemplateParamCount},
		{body("t00", "pt_BR", 1), graph.ErrTemplateMissing},
		{body("nope", "en_US", 1), graph.ErrTemplateMissing},
		{body("paused", "en_US", 0), graph.ErrTemplatePaused},
		{body("gone", "en_US", 0), graph.ErrTemplateDisabled},
	} {
		a := send(t, fake, tt.body)
		if a.err.Error.Code != tt.code {
			t.Errorf("%s: code %d, want %d", tt.body, a.err.Error.Code, tt.code)
		}
	}
	fake.SetTemplateStatus("t00", "en_US", "PAUSED")
	if a := send(t, fake, body("t00", "en_US", 1)); a.err.Error.Code != graph.ErrTemplatePaused {
		t.Errorf("after SetTemplateStatus: code %d", a.err.Error.Code)
	}
}
