package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

func templateEvent(id string, typ sdk.EventType, value string, received time.Time) sdk.Event {
	return sdk.Event{ID: id, Type: typ, OccurredAt: received, ReceivedAt: received, Raw: json.RawMessage(value)}
}

func versionOf(t *testing.T, s *Store, name, lang string) (templates.Template, bool) {
	t.Helper()
	vs, known, err := s.TemplateVersions(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Language == lang {
			return v, known
		}
	}
	return templates.Template{}, known
}

func TestTemplateCatalogueFetchAndWebhooks(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)

	// Before any fetch, a webhook alone makes a template known, and the
	// catalogue is not "known" (complete).
	if _, err := s.Append(ctx, []sdk.Event{templateEvent("evt_w1", templates.EventStatus,
		`{"event":"PAUSED","message_template_id":11,"message_template_name":"promo","message_template_language":"pt-BR","reason":"LOW_QUALITY"}`, t0)}); err != nil {
		t.Fatal(err)
	}
	v, known := versionOf(t, s, "promo", "pt_BR")
	if v.Status != "PAUSED" || v.Reason != "LOW_QUALITY" || v.Source != "webhook" || known {
		t.Fatalf("after the webhook: %+v known=%v", v, known)
	}

	// A fetch that began before the webhook does not undo it; the rest of
	// it is stored, and templates it did not list are removed.
	list := []templates.Template{
		{ID: "11", Name: "promo", Language: "pt_BR", Status: "APPROVED", Category: "MARKETING"},
		{ID: "12", Name: "order_update", Language: "en_US", Status: "APPROVED", Category: "UTILITY",
			Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}"}]`)},
		{ID: "13", Name: "old", Language: "es", Status: "APPROVED"},
	}
	added, changed, removed, err := s.ReplaceTemplates(ctx, list, t0.Add(-time.Second))
	if err != nil || added != 2 || changed != 0 || removed != 0 {
		t.Fatalf("first fetch: +%d ~%d -%d %v", added, changed, removed, err)
	}
	if v, known = versionOf(t, s, "promo", "pt_BR"); v.Status != "PAUSED" || !known {
		t.Fatalf("a fetch older than the webhook undid it: %+v known=%v", v, known)
	}
	if v, _ = versionOf(t, s, "order_update", "en_US"); v.Parameters == nil || len(v.Parameters.Body) != 1 {
		t.Fatalf("order_update: %+v", v)
	}

	// A later fetch wins, and drops what Meta no longer lists.
	added, changed, removed, err = s.ReplaceTemplates(ctx, list[:2], t0.Add(time.Minute))
	if err != nil || added != 0 || changed != 1 || removed != 1 {
		t.Fatalf("second fetch: +%d ~%d -%d %v", added, changed, removed, err)
	}
	if v, _ = versionOf(t, s, "promo", "pt_BR"); v.Status != "APPROVED" || v.Source != "graph" {
		t.Fatalf("after the second fetch: %+v", v)
	}
	if old, _ := versionOf(t, s, "old", "es"); old.ID != "" {
		t.Fatal("a template the fetch no longer lists is still there")
	}

	// Category, quality and a later pause arrive by webhook; a duplicate
	// of an old webhook (same event id) changes nothing.
	t1 := t0.Add(2 * time.Minute)
	if _, err := s.Append(ctx, []sdk.Event{
		templateEvent("evt_w2", templates.EventCategory, `{"message_template_id":12,"message_template_name":"order_update","message_template_language":"en-US","previous_category":"UTILITY","new_category":"MARKETING"}`, t1),
		templateEvent("evt_w3", templates.EventQuality, `{"previous_quality_score":"GREEN","new_quality_score":"YELLOW","message_template_id":12,"message_template_name":"order_update","message_template_language":"en_US"}`, t1),
		templateEvent("evt_w1", templates.EventStatus, `{"event":"PAUSED","message_template_name":"promo","message_template_language":"pt-BR"}`, t1),
	}); err != nil {
		t.Fatal(err)
	}
	if v, _ = versionOf(t, s, "order_update", "en_US"); v.Category != "MARKETING" || v.Quality != "YELLOW" || v.Status != "APPROVED" || v.Parameters == nil {
		t.Fatalf("order_update after webhooks: %+v", v)
	}
	if v, _ = versionOf(t, s, "promo", "pt_BR"); v.Status != "APPROVED" {
		t.Fatalf("a duplicate webhook changed the catalogue: %+v", v)
	}

	if err := s.TemplateRefreshFailed(ctx, "graph said no"); err != nil {
		t.Fatal(err)
	}
	c, err := s.TemplateCatalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Templates) != 2 || c.RefreshedAt == nil || !c.RefreshedAt.Equal(t0.Add(time.Minute)) || c.LastError != "graph said no" {
		t.Fatalf("catalogue: %+v", c)
	}
}
