package registry

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type fake struct{ name string }

func (f *fake) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(f.name)) }
func (f *fake) Snapshot() any                                    { return f.name }

func newFake(names ...string) *fake {
	f := &fake{name: "default"}
	for _, n := range names {
		f.name = n
	}
	return f
}

func TestServeFake(t *testing.T) {
	cases := []struct {
		name  string
		start func() Fake
		want  string
	}{
		{"no options", ServeFake(newFake), "default"},
		{"options reach the constructor", ServeFake(newFake, "tuned"), "tuned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.start()
			rr := httptest.NewRecorder()
			f.Handler.ServeHTTP(rr, httptest.NewRequest("GET", "/", nil))
			if rr.Body.String() != tc.want || f.Snapshot() != tc.want {
				t.Errorf("served %q, snapshot %v; want %q", rr.Body, f.Snapshot(), tc.want)
			}
			if a, b := tc.start(), tc.start(); a.Handler == b.Handler {
				t.Error("each start must build a new fake")
			}
		})
	}
}
