package zendesk

import (
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

// An empty config names every missing key at once.
func TestConfigNamesEveryMissingKey(t *testing.T) {
	_, err := parseConfig(sdk.Config{Name: "c", Raw: []byte(`{}`)})
	if err == nil {
		t.Fatal("an empty config was accepted")
	}
	for _, k := range []string{"subdomain", "email", "token"} {
		if !strings.Contains(err.Error(), "connectors.c.config."+k+": required") {
			t.Errorf("error does not name %s:\n%v", k, err)
		}
	}
}
