package noop

import (
	"encoding/json"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Suite{
		Name:      "noop",
		New:       func(t *testing.T) (sdk.Connector, json.RawMessage) { return New(), json.RawMessage(`{}`) },
		BadConfig: json.RawMessage(`{"url": "http://x"}`),
	}.Run(t)
}
