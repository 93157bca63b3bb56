package kafka_test

import (
	"context"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahub/wahub/plugins/kafka"
	"github.com/wahub/wahub/plugins/kafka/kafkatest"
	"github.com/wahub/wahub/sdk"
)

// startBench is a cluster that acknowledges and discards what it is sent,
// so that the figures measure the producers, not kfake's storage.
func startBench() (*kafkatest.Cluster, error) {
	return kafkatest.Start([]string{"bench"}, kfake.BlackholeProduce())
}

func newConnector(tb testing.TB, raw []byte) sdk.Connector {
	tb.Helper()
	c := kafka.New()
	if err := c.Configure(context.Background(), sdk.Config{Name: "bench", Raw: raw}, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.(io.Closer).Close() })
	return c
}
