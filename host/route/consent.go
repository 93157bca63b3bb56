package route

import (
	"strings"
	"unicode"

	"github.com/wahub/wahub/sdk"
)

// consentWords are the configured opt-out and opt-in keywords, folded.
type consentWords struct {
	out, in       map[string]string // folded keyword → as configured
	outPay, inPay map[string]bool
}

func newConsentWords(outKW, inKW, outPay, inPay []string) consentWords {
	w := consentWords{out: map[string]string{}, in: map[string]string{}, outPay: map[string]bool{}, inPay: map[string]bool{}}
	for _, k := range outKW {
		w.out[wholeMessage(k)] = k
	}
	for _, k := range inKW {
		w.in[wholeMessage(k)] = k
	}
	for _, p := range outPay {
		w.outPay[p] = true
	}
	for _, p := range inPay {
		w.inPay[p] = true
	}
	return w
}

// wholeMessage folds a message for comparison with a consent keyword: the
// keyword must be the whole message, but "Parar." and " PARAR!" are what
// people type.
func wholeMessage(s string) string {
	return strings.TrimFunc(fold(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// ConsentChange reports the consent an event states, if any, and how:
// a user_preferences stop/resume (ingest makes those optin.* events), an
// opt-out or opt-in keyword as the whole text of a message, or a template
// quick-reply payload configured as one.
func (r *Router) ConsentChange(ev *sdk.Event) (state sdk.Consent, source string) {
	switch ev.Type {
	case sdk.TypeOptinRevoked, sdk.TypeOptinGranted:
		state = sdk.ConsentGranted
		if ev.Type == sdk.TypeOptinRevoked {
			state = sdk.ConsentRevoked
		}
		source = "user_preferences"
		if ev.Preference != nil && ev.Preference.Source != "" {
			source = ev.Preference.Source
		}
		return state, source
	case sdk.TypeButtonClicked:
		if ev.Message == nil || ev.Message.Button == nil {
			return "", ""
		}
		id := ev.Message.Button.ID
		switch {
		case r.consent.outPay[id]:
			return sdk.ConsentRevoked, "button " + id
		case r.consent.inPay[id]:
			return sdk.ConsentGranted, "button " + id
		}
	case sdk.TypeMessageReceived:
		if ev.Message == nil || ev.Message.Text == "" || len(ev.Message.Text) > 64 {
			return "", ""
		}
		w := wholeMessage(ev.Message.Text)
		if k, ok := r.consent.out[w]; ok {
			return sdk.ConsentRevoked, "keyword " + k
		}
		if k, ok := r.consent.in[w]; ok {
			return sdk.ConsentGranted, "keyword " + k
		}
	}
	return "", ""
}
