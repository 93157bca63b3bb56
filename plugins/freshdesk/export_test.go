package freshdesk

import (
	"time"

	"github.com/wahub/wahub/sdk"
)

// SetClock fixes the clock of a connector made by New, for the tests in
// package freshdesk_test (which cannot be package freshdesk:
// freshdesktest, which they use, imports freshdesk).
func SetClock(c sdk.Connector, now func() time.Time) { c.(*connector).now = now }

// MaxConcurrent is maxConcurrent, for the test of the bound.
const MaxConcurrent = maxConcurrent
