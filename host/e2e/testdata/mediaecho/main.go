// Command mediaecho is an external connector plugin that reads every
// event's file through Host.OpenMedia, puts it back with Host.PutMedia,
// tries to put a file larger than the hub takes, and reports what it saw
// as JSON to the URL in its config. The e2e tests build it to prove the
// media callbacks across the plugin boundary of the real binary.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/wahub/wahub/sdk"
)

type connector struct {
	host   sdk.Host
	report string
	big    int64
}

// Report is one event's media as the plugin saw it.
type Report struct {
	MediaID     string `json:"media_id"`
	State       string `json:"state"`
	OpenSHA256  string `json:"open_sha256,omitempty"`
	OpenSize    int64  `json:"open_size,omitempty"`
	InfoSHA256  string `json:"info_sha256,omitempty"`
	Unavailable bool   `json:"unavailable,omitempty"`
	OpenError   string `json:"open_error,omitempty"`
	PutID       string `json:"put_id,omitempty"`
	PutSHA256   string `json:"put_sha256,omitempty"`
	BigRefusal  string `json:"big_refusal,omitempty"`
}

func (c *connector) Describe() sdk.Info { return sdk.Info{Name: "mediaecho", Version: "1.0.0"} }

func (c *connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	var conf struct {
		Report string `json:"report"`
		Big    int64  `json:"big"`
	}
	if err := cfg.Decode(&conf); err != nil {
		return err
	}
	c.host, c.report, c.big = host, conf.Report, conf.Big
	return nil
}

func (c *connector) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		out[i] = sdk.Result{EventID: ev.ID, Outcome: sdk.Delivered}
		if ev.Message == nil || ev.Message.Media == nil {
			continue
		}
		r := Report{MediaID: ev.Message.Media.ID, State: string(ev.Message.Media.State)}
		info, rc, err := c.host.OpenMedia(ctx, r.MediaID)
		if err != nil {
			r.Unavailable, r.OpenError = errors.Is(err, sdk.ErrMediaUnavailable), err.Error()
		} else {
			var buf bytes.Buffer
			h := sha256.New()
			io.Copy(io.MultiWriter(h, &buf), rc)
			rc.Close()
			r.OpenSHA256, r.OpenSize, r.InfoSHA256 = hex.EncodeToString(h.Sum(nil)), int64(buf.Len()), info.SHA256
			put, err := c.host.PutMedia(ctx, sdk.MediaUpload{MimeType: info.MimeType, Filename: "copy", Size: int64(buf.Len())}, &buf)
			if err != nil {
				r.PutID = "error: " + err.Error()
			} else {
				r.PutID, r.PutSHA256 = put.ID, put.SHA256
			}
		}
		if c.big > 0 {
			// Streamed without a declared size: the hub stops it itself.
			_, err := c.host.PutMedia(ctx, sdk.MediaUpload{MimeType: "application/pdf"}, io.LimitReader(zeros{}, c.big))
			var refused *sdk.RefusedError
			if errors.As(err, &refused) {
				r.BigRefusal = refused.Code
			} else if err != nil {
				r.BigRefusal = "error: " + err.Error()
			}
		}
		body, _ := json.Marshal(r)
		resp, err := http.Post(c.report, "application/json", bytes.NewReader(body))
		if err != nil {
			out[i] = sdk.Result{EventID: ev.ID, Outcome: sdk.Retry, Error: err.Error()}
			continue
		}
		resp.Body.Close()
	}
	return out
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func main() { sdk.Serve(&connector{}) }
