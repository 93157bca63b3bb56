package zendesk

import (
	"time"

	"github.com/wahub/wahub/sdk"
)

// SetClock fixes the clock of a connector made by New, for tests in
// package zendesk_test (which cannot be package zendesk: zendesktest,
// which they use, imports zendesk).
func SetClock(c sdk.Connector, now func() time.Time) { c.(*connector).now = now }
