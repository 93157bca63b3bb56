package store

import (
	"testing"

	"github.com/wahub/wahub/sdk"
)

func TestOutcomeOf(t *testing.T) {
	cases := []struct {
		in   sdk.Outcome
		want AttemptOutcome
	}{
		{sdk.Delivered, AttemptDelivered},
		{sdk.Retry, AttemptRetry},
		{sdk.Failed, AttemptFailed},
		{sdk.Skipped, AttemptSkipped},
		{0, AttemptError},
		{sdk.Outcome(99), AttemptError},
	}
	for _, tc := range cases {
		if got := OutcomeOf(tc.in); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The stored strings are the SDK's names: rows written before the
	// type existed read the same.
	for _, o := range []sdk.Outcome{sdk.Delivered, sdk.Retry, sdk.Failed, sdk.Skipped} {
		if string(OutcomeOf(o)) != o.String() {
			t.Errorf("%v is stored as %q", o, OutcomeOf(o))
		}
	}
}
