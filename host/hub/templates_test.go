package hub

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/templates"
)

type catalogue struct {
	known bool
	list  []templates.Template
}

func (c catalogue) TemplateVersions(ctx context.Context, name string) ([]templates.Template, bool, error) {
	var out []templates.Template
	for _, t := range c.list {
		if t.Name == name {
			out = append(out, t)
		}
	}
	return out, c.known, nil
}

func TestTriggerProblems(t *testing.T) {
	cfg, err := config.Parse([]byte(`
teams: {support: {connectors: []}}
routes: [{name: default, team: support}]
triggers:
  - {name: ok, on: [optin.granted], reply: {template: {name: welcome, language: pt_BR}}}
  - {name: paused, on: [optin.granted], reply: {template: {name: promo, language: pt_BR}}}
  - {name: params, on: [optin.granted], reply: {template: {name: order, language: en_US, components: [{type: body, parameters: [{type: text, text: x}]}]}}}
  - {name: missing, on: [optin.granted], reply: {template: {name: nope, language: en_US}}}
  - {name: buttons, on: [optin.granted], reply: {interactive: {type: button, body: {text: "?"}, action: {buttons: [
      {type: reply, reply: {id: a, title: A}}, {type: reply, reply: {id: b, title: B}}, {type: reply, reply: {id: c, title: C}}, {type: reply, reply: {id: d, title: D}}]}}}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	order, _ := templates.Derive(json.RawMessage(`[{"type":"BODY","text":"{{1}} {{2}}"}]`))
	cat := catalogue{list: []templates.Template{
		{Name: "welcome", Language: "pt_BR", Status: "APPROVED"},
		{Name: "promo", Language: "pt_BR", Status: "PAUSED"},
		{Name: "order", Language: "en_US", Status: "APPROVED", Parameters: order},
	}}
	for _, known := range []bool{true, false} {
		cat.known = known
		problems, k, err := TriggerProblems(context.Background(), cfg, cat)
		if err != nil || k != known {
			t.Fatalf("known=%v: %v %v", known, k, err)
		}
		all := strings.Join(problems, "\n")
		want := []string{"triggers[1] (paused).reply.template", "template_paused", "triggers[2] (params).reply.template", "the body takes 2", "triggers[4] (buttons).reply.interactive", "at most 3"}
		if known {
			want = append(want, "triggers[3] (missing).reply.template", "template_unknown")
		} else if strings.Contains(all, "missing") {
			t.Errorf("an unknown template was refused before the catalogue was fetched:\n%s", all)
		}
		for _, w := range want {
			if !strings.Contains(all, w) {
				t.Errorf("known=%v: problems lack %q:\n%s", known, w, all)
			}
		}
		if strings.Contains(all, "(ok)") {
			t.Errorf("the good trigger has a problem:\n%s", all)
		}
	}
}
