package kafka

import (
	"context"
)

// Health reports whether the cluster answers for the configured topics
// with the configured credentials.
func (c *connector) Health(ctx context.Context) error {
	st := c.st.Load()
	if st == nil {
		return errNotConfigured
	}
	return st.checkTopics(ctx, st.client)
}
