package outbound

import (
	"testing"
	"time"
)

// The wire window never lets more than the rate through in any window,
// however the requests arrive.
func TestWindowHoldsTheRateInEveryWindow(t *testing.T) {
	tests := []struct {
		name    string
		rate    float64
		arrival func(i int) time.Duration // when request i asks
	}{
		{"all at once", 15, func(int) time.Duration { return 0 }},
		{"bunched by a slow commit", 15, func(i int) time.Duration { return time.Duration(i/10) * 700 * time.Millisecond }},
		{"evenly, just too fast", 80, func(i int) time.Duration { return time.Duration(i) * 12 * time.Millisecond }},
		{"below one per second", 0.5, func(i int) time.Duration { return time.Duration(i) * 100 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(tt.rate)
			var sent []time.Time
			for i := 0; i < 200; i++ {
				at := t0.Add(tt.arrival(i))
				sent = append(sent, at.Add(w.reserve(at)))
			}
			limit := max(1, int(tt.rate))
			span := time.Duration(float64(limit) / tt.rate * float64(time.Second))
			for i := range sent {
				if i > 0 && sent[i].Before(sent[i-1]) {
					t.Fatalf("request %d sent before request %d", i, i-1)
				}
				if j := i - limit; j >= 0 && sent[i].Sub(sent[j]) < span {
					t.Fatalf("requests %d..%d within %s: %d in a window of %s", j, i, sent[i].Sub(sent[j]), limit+1, span)
				}
			}
		})
	}
}
