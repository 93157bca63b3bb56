package slack

import "testing"

func TestPlainNotice(t *testing.T) {
	for mrk, want := range map[string]string{
		":warning: _Not sent: foto_grande.jpg is 6 MB (media_too_large)._":         "Not sent: foto_grande.jpg is 6 MB (media_too_large).",
		"_The image could not be retrieved: gone_.":                                "The image could not be retrieved: gone.",
		"Delivered to *Ana* — _read_ at 10:00":                                     "Delivered to *Ana* — read at 10:00",
		"snake_case_name stays":                                                    "snake_case_name stays",
		":warning: Not delivered: 5521998760002 opted out; use a utility template": "Not delivered: 5521998760002 opted out; use a utility template",
	} {
		if got := plainNotice(mrk); got != want {
			t.Errorf("plainNotice(%q)\n got %q\nwant %q", mrk, got, want)
		}
	}
}
