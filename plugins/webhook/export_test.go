package webhook

import (
	"time"

	"github.com/wahub/wahub/sdk"
)

// SetClock fixes the clock of a connector made by New, for tests in
// package webhook_test (which cannot be package webhook: webhooktest,
// which they use, imports webhook).
func SetClock(c sdk.Connector, now func() time.Time) { c.(*connector).now = now }

// MaxConcurrent is maxConcurrent, for the test that checks the bound.
const MaxConcurrent = maxConcurrent
