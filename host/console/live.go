package console

import (
	"net/http"
	"time"
)

// live streams "change" server-sent events: one soon after each commit to
// the store (at most a few a second), and one every Keepalive while
// nothing commits, since a connector's process state changes without a
// commit. The page then fetches itself again and swaps its live regions.
func (c *Console) live(w http.ResponseWriter, r *http.Request, s *session) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// The server's WriteTimeout would cut a stream that lives for hours:
	// each write extends the deadline by itself instead.
	send := func(msg string) bool {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write([]byte(msg)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 3000\n: connected\n\n") {
		return
	}
	const minGap = 300 * time.Millisecond
	keep := time.NewTicker(c.opt.Keepalive)
	defer keep.Stop()
	for {
		changed := c.opt.Store.Changed()
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if !send("event: change\ndata: tick\n\n") {
				return
			}
		case <-changed:
			// Coalesce a burst of commits into one refresh.
			t := time.NewTimer(minGap)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
			if !send("event: change\ndata: commit\n\n") {
				return
			}
		}
	}
}
