package hub

import (
	"context"
	"errors"

	"github.com/wahub/wahub/host/console"
)

// consoleSandbox lets the console show and play the sandbox's fakes.
type consoleSandbox struct{ h *Hub }

var errSandboxStarting = errors.New("the sandbox is still starting: try again in a moment")

func (s *consoleSandbox) View() console.SandboxView {
	sb := s.h.sandbox.Load()
	if sb == nil {
		return console.SandboxView{}
	}
	return sb.ConsoleView()
}

func (s *consoleSandbox) Samples() []string {
	sb := s.h.sandbox.Load()
	if sb == nil {
		return nil
	}
	return sb.Samples()
}

func (s *consoleSandbox) SlackReply(ctx context.Context, threadTS, text string) error {
	sb := s.h.sandbox.Load()
	if sb == nil {
		return errSandboxStarting
	}
	name, secret := s.h.connectorOf("slack", "signing_secret")
	if name == "" {
		return errors.New("no slack connector is configured")
	}
	return sb.SlackReply(ctx, name, secret, threadTS, text)
}

func (s *consoleSandbox) ZendeskComment(ctx context.Context, ticketID int64, text string) error {
	sb := s.h.sandbox.Load()
	if sb == nil {
		return errSandboxStarting
	}
	name, _ := s.h.connectorOf("zendesk", "webhook_secret")
	if name == "" {
		return errors.New("no zendesk connector is configured")
	}
	return sb.ZendeskComment(ctx, name, ticketID, text)
}

func (s *consoleSandbox) CustomerMessage(ctx context.Context, sample, text string) error {
	sb := s.h.sandbox.Load()
	if sb == nil {
		return errSandboxStarting
	}
	return sb.CustomerMessage(ctx, sample, text)
}

// connectorOf finds the first enabled connector of a plugin and one of
// its config values.
func (h *Hub) connectorOf(plugin, key string) (name, value string) {
	for _, n := range sortedKeys(h.cfg.Connectors) {
		cc := h.cfg.Connectors[n]
		if cc.Enabled && cc.Plugin.String() == plugin {
			v, _ := cc.Config.Reveal()[key].(string)
			return n, v
		}
	}
	return "", ""
}
