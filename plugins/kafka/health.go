package kafka

import "context"

// Health reports whether the cluster answers for the configured topics
// with the configured credentials.
func (st *state) Health(ctx context.Context) error { return st.checkTopics(ctx, st.client) }
