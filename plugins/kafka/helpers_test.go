package kafka_test

import (
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahub/wahub/plugins/kafka/kafkatest"
)

// startBench is a cluster that acknowledges and discards what it is sent,
// so that the figures measure the producers, not kfake's storage.
func startBench() (*kafkatest.Cluster, error) {
	return kafkatest.Start([]string{"bench"}, kfake.BlackholeProduce())
}
