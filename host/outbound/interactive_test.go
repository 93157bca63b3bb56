package outbound

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

func buttons(n int, title string) string {
	var bs []string
	for i := range n {
		bs = append(bs, fmt.Sprintf(`{"type":"reply","reply":{"id":"b%d","title":"%s%d"}}`, i, title, i))
	}
	return `{"type":"button","body":{"text":"Reschedule?"},"action":{"buttons":[` + strings.Join(bs, ",") + `]}}`
}

func list(sections, rowsEach int, rowTitle string) string {
	var ss []string
	n := 0
	for s := range sections {
		var rs []string
		for range rowsEach {
			rs = append(rs, fmt.Sprintf(`{"id":"r%d","title":"%s","description":"d"}`, n, rowTitle))
			n++
		}
		ss = append(ss, fmt.Sprintf(`{"title":"S%d","rows":[%s]}`, s, strings.Join(rs, ",")))
	}
	return `{"type":"list","body":{"text":"Which one?"},"action":{"button":"Options","sections":[` + strings.Join(ss, ",") + `]}}`
}

func TestCheckInteractive(t *testing.T) {
	tests := []struct {
		name, in string
		refused  string // substring of a RefusedError; "" for none
		invalid  bool
	}{
		{"three buttons", buttons(3, "Opt"), "", false},
		{"four buttons", buttons(4, "Opt"), "4 buttons; at most 3", false},
		{"title of 20", buttons(1, strings.Repeat("é", 19)), "", false},
		{"title of 21", buttons(1, strings.Repeat("é", 20)), "is 21 characters; at most 20", false},
		{"duplicate ids", `{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}},{"type":"reply","reply":{"id":"a","title":"B"}}]}}`, "used twice", false},
		{"no body", `{"type":"button","action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]}}`, `"body"`, false},
		{"body too long", `{"type":"button","body":{"text":"` + strings.Repeat("x", 1025) + `"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]}}`, "at most 1024", false},
		{"ten rows", list(2, 5, "Row"), "", false},
		{"eleven rows", list(1, 11, "Row"), "11 rows; at most 10", false},
		{"row title of 25", list(1, 1, strings.Repeat("r", 25)), "at most 24", false},
		{"eleven sections", list(11, 1, "Row"), "11 sections; at most 10", false},
		{"list button too long", `{"type":"list","body":{"text":"x"},"action":{"button":"` + strings.Repeat("b", 21) + `","sections":[{"rows":[{"id":"a","title":"A"}]}]}}`, "at most 20", false},
		{"cta_url passes", `{"type":"cta_url","body":{"text":"x"},"action":{"name":"cta_url","parameters":{"display_text":"Go","url":"https://x"}}}`, "", false},
		{"unknown type", `{"type":"carrousel"}`, "", true},
		{"no type", `{"body":{"text":"x"}}`, "", true},
		{"not an object", `[1]`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkInteractive([]byte(tt.in))
			var ref *sdk.RefusedError
			var inv *InvalidError
			switch {
			case tt.invalid:
				if !errors.As(err, &inv) {
					t.Fatalf("got %v; want an InvalidError", err)
				}
			case tt.refused == "":
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
			default:
				if !errors.As(err, &ref) || ref.Code != RefusedInteractive || !strings.Contains(ref.Message, tt.refused) {
					t.Fatalf("got %v; want %s containing %q", err, RefusedInteractive, tt.refused)
				}
			}
		})
	}
}
