package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/templates"
)

// fetchTemplates lists the WABA's catalogue from the Graph API.
func (h *Hub) fetchTemplates(ctx context.Context) ([]templates.Template, error) {
	infos, err := h.graph.c.Load().Templates(ctx, h.cfg.WhatsApp.BusinessAccountID, 100)
	if err != nil {
		return nil, err
	}
	return FromGraph(infos), nil
}

// FromGraph converts a Graph listing into catalogue entries.
func FromGraph(infos []graph.TemplateInfo) []templates.Template {
	out := make([]templates.Template, 0, len(infos))
	for _, in := range infos {
		t := templates.Template{
			ID: in.ID, Name: in.Name, Language: templates.NormalizeLanguage(in.Language),
			Category: strings.ToUpper(in.Category), Status: strings.ToUpper(in.Status),
			ParameterFormat: strings.ToUpper(in.ParameterFormat), Components: in.Components, Source: "graph",
		}
		if in.QualityScore != nil {
			t.Quality = strings.ToUpper(in.QualityScore.Score)
		}
		out = append(out, t)
	}
	return out
}

// TriggerProblems holds the messages triggers would send against the
// catalogue and WhatsApp's limits: a template that does not exist, is not
// approved or takes other parameters; an interactive message over the
// limits. known is false when the catalogue has never been fetched, and
// then only what webhooks told is checked.
func TriggerProblems(ctx context.Context, cfg *config.Config, src outbound.Templates) (problems []string, known bool, err error) {
	known = true
	for i, t := range cfg.Triggers {
		if t.Reply == nil {
			continue
		}
		key := fmt.Sprintf("triggers[%d] (%s).reply", i, t.Name)
		if len(t.Reply.Interactive) > 0 {
			raw, _ := json.Marshal(t.Reply.Interactive)
			if err := outbound.CheckInteractive(raw); err != nil {
				problems = append(problems, key+".interactive: "+err.Error())
			}
		}
		tpl := t.Reply.Template
		if tpl == nil || src == nil {
			continue
		}
		versions, k, err := src.TemplateVersions(ctx, tpl.Name)
		if err != nil {
			return nil, false, err
		}
		known = known && k
		found, prob := templates.Resolve(versions, k, tpl.Name, tpl.Language)
		if prob == nil && found != nil {
			var comps []json.RawMessage
			for _, c := range tpl.Components {
				b, _ := json.Marshal(c)
				comps = append(comps, b)
			}
			prob = templates.Check(found, comps)
		}
		if prob != nil {
			problems = append(problems, key+".template: "+prob.Message+" ("+prob.Code+")")
		}
	}
	return problems, known, nil
}

// checkTriggerTemplates logs what TriggerProblems finds, after each fetch.
func (h *Hub) checkTriggerTemplates(ctx context.Context) {
	problems, _, err := TriggerProblems(ctx, h.cfg, h.store)
	if err != nil {
		if ctx.Err() != nil {
			return // the hub is stopping: nothing failed
		}
		h.log.Error("templates: checking the triggers' templates failed", "err", err)
		return
	}
	for _, p := range problems {
		h.log.Warn("templates: a trigger's reply would be refused", "problem", p)
	}
}
