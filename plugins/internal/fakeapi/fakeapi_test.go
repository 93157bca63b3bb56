package fakeapi

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

type fault struct {
	path   string
	status int
}

func TestFaultsNext(t *testing.T) {
	onPath := func(p string) func(fault) bool {
		return func(f fault) bool { return f.path == "" || f.path == p }
	}
	cases := []struct {
		name  string
		setup func(*Faults[fault])
		paths []string
		want  []int // 0: no fault
	}{
		{"empty", func(*Faults[fault]) {}, []string{"/a", "/b"}, []int{0, 0}},
		{"queue in order", func(q *Faults[fault]) { q.Push(fault{status: 500}, fault{status: 503}) }, []string{"/a", "/a", "/a"}, []int{500, 503, 0}},
		{"repeat", func(q *Faults[fault]) { q.Repeat(2, fault{status: 429}) }, []string{"/a", "/a", "/a"}, []int{429, 429, 0}},
		{"a fault for another path waits", func(q *Faults[fault]) { q.Push(fault{path: "/b", status: 500}, fault{status: 503}) },
			[]string{"/a", "/a", "/b"}, []int{503, 0, 500}},
		{"every second", func(q *Faults[fault]) { q.Every(2, fault{status: 503}) }, []string{"/a", "/a", "/a", "/a"}, []int{0, 503, 0, 503}},
		{"every counts only requests it applies to", func(q *Faults[fault]) { q.Every(2, fault{path: "/b", status: 503}) },
			[]string{"/b", "/a", "/b", "/a", "/b"}, []int{0, 0, 503, 0, 0}},
		{"queue before every", func(q *Faults[fault]) { q.Every(1, fault{status: 503}); q.Push(fault{status: 500}) }, []string{"/a", "/a"}, []int{500, 503}},
		{"every stopped", func(q *Faults[fault]) { q.Every(1, fault{status: 503}); q.Every(0, fault{}) }, []string{"/a"}, []int{0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var q Faults[fault]
			tc.setup(&q)
			var got []int
			for _, p := range tc.paths {
				f, ok := q.Next(onPath(p))
				if ok != (f.status != 0) {
					t.Fatalf("Next(%s) = %v, %v", p, f, ok)
				}
				got = append(got, f.status)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLog(t *testing.T) {
	l := Log[int]{Max: 4}
	for i := range 5 {
		l.Add(i)
	}
	// The fifth entry found the log full: the older half went.
	if got := l.All(); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("All = %v", got)
	}
	if got := l.Last(2); !slices.Equal(got, []int{3, 4}) {
		t.Errorf("Last(2) = %v", got)
	}
	if got := l.Last(10); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("Last(10) = %v", got)
	}
	if n := l.Count(func(i int) bool { return i%2 == 0 }); n != 2 || l.Len() != 3 {
		t.Errorf("Count = %d, Len = %d", n, l.Len())
	}
	var unbounded Log[int]
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() { unbounded.Add(i) })
	}
	wg.Wait()
	if unbounded.Len() != 100 {
		t.Errorf("unbounded Len = %d", unbounded.Len())
	}
}

func TestClock(t *testing.T) {
	var c Clock
	if d := time.Since(c.Now()); d < 0 || d > time.Hour {
		t.Errorf("zero Clock is not time.Now: %v", c.Now())
	}
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c.Set(func() time.Time { return at })
	if !c.Now().Equal(at) {
		t.Errorf("Now = %v, want %v", c.Now(), at)
	}
}

func TestRecorder(t *testing.T) {
	cases := []struct {
		name    string
		handler func(http.ResponseWriter)
		want    int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200},
		{"first status wins", func(w http.ResponseWriter) { w.WriteHeader(429); w.WriteHeader(500) }, 429},
		{"json", func(w http.ResponseWriter) { WriteJSON(w, 201, ContentTypeJSON, map[string]int{"id": 1}) }, 201},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			rec := &Recorder{ResponseWriter: rr}
			tc.handler(rec)
			if rec.Status != tc.want {
				t.Errorf("Status = %d, want %d", rec.Status, tc.want)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	rr := httptest.NewRecorder()
	WriteJSON(rr, 400, "application/json;charset=utf-8", map[string]any{"b": 1, "a": "<x>"})
	if rr.Code != 400 || rr.Header().Get("Content-Type") != "application/json;charset=utf-8" || rr.Body.String() != `{"a":"\u003cx\u003e","b":1}` {
		t.Errorf("WriteJSON: %d %q %s", rr.Code, rr.Header().Get("Content-Type"), rr.Body)
	}
	d := &Discard{}
	WriteJSON(d, 200, ContentTypeJSON, 1)
	if d.Header().Get("Content-Type") != ContentTypeJSON {
		t.Errorf("Discard kept no header: %v", d.Header())
	}
}
