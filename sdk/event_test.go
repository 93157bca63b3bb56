package sdk

import "testing"

func TestQuotedExcerpt(t *testing.T) {
	cases := []struct {
		text string
		n    int
		want string
	}{
		{"", 10, ""},
		{"  Your order\n  shipped  ", 50, "Your order shipped"},
		{"olá mundo", 3, "olá…"},
		{"exactly", 7, "exactly"},
	}
	for _, tc := range cases {
		if got := (&Quoted{Text: tc.text}).Excerpt(tc.n); got != tc.want {
			t.Errorf("Excerpt(%q, %d) = %q, want %q", tc.text, tc.n, got, tc.want)
		}
	}
}
