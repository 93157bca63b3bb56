package hubspot

import (
	"net/http"
	"time"

	"github.com/wahub/wahub/sdk"
)

// SetClock fixes the clock of a connector made by New (creation markers,
// sync cursors, Retry-After dates), for tests in package hubspot_test.
func SetClock(c sdk.Connector, now func() time.Time) { c.(*connector).now = now }

// SetTransport makes a connector made by New send its requests through rt;
// call it before Configure.
func SetTransport(c sdk.Connector, rt http.RoundTripper) { c.(*connector).transport = rt }
