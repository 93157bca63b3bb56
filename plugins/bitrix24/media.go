package bitrix24

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

// uploadRate is the slowest upload the timeout allows for: each full
// uploadRate bytes of a file add a second to config.timeout.
const uploadRate = 512 << 10

// hasFile reports whether an event's comment carries a file: its
// message has media the hub may hold. One marked unavailable is only
// mentioned, in an ordinary comment.
func (d *delivery) hasFile(ev *sdk.Event) bool {
	m := ev.Message
	return d.s.attachMedia && m != nil && m.Media != nil && m.Media.ID != "" && m.Media.State != sdk.MediaUnavailable
}

// commentBody is the comment of an event that carries no file: a file
// the hub already knows to be lost is mentioned.
func commentBody(ev *sdk.Event) string {
	if m := ev.Message; m != nil && m.Media != nil && m.Media.State == sdk.MediaUnavailable {
		return noteText(ev, mediafile.Unavailable(mediafile.Noun(m), m.Media.Reason))
	}
	return commentText(ev)
}

// noteText is the comment of a message whose file is not attached, with
// why.
func noteText(ev *sdk.Event, note string) string {
	return commentText(ev) + "\n(" + note + ")"
}

// commentWithFile adds the timeline comment of an event whose message
// has a file, with the file attached: crm.timeline.comment.add with
// FILES [[name, base64]], the portal stores it on its Drive and shows it
// on the comment. The file is streamed from the hub and base64-encoded
// into the request body on the way, never held whole. It answers like
// client.run does for one command: a failure of the comment itself in
// the result, a failure of the call as the error. A file the hub cannot
// provide, or the portal refuses, gives a comment without it that says
// so.
func (d *delivery) commentWithFile(ev *sdk.Event, ref entityRef) ([]cmdResult, error) {
	m := ev.Message.Media
	what := mediafile.Noun(ev.Message)
	info, rc, err := d.s.host.OpenMedia(d.ctx, m.ID)
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		return d.plainComment(ev, ref, mediafile.Unavailable(what, mediafile.Reason(err)))
	}
	if err != nil {
		return nil, fmt.Errorf("reading the %s from the hub: %w", what, err)
	}
	id, _ := strconv.ParseUint(ref.ID, 10, 63)
	prefix, suffix, err := fileCommentJSON(id, ref.Type, commentText(ev), mediafile.Name(ev, info))
	if err != nil {
		rc.Close()
		return nil, err
	}
	first := rc
	open := func() (io.ReadCloser, int64, error) {
		r := first
		first = nil
		if r == nil {
			// A retry after the portal's rate limit: the first
			// stream is spent.
			var err error
			if _, r, err = d.s.host.OpenMedia(d.ctx, m.ID); err != nil {
				return nil, 0, fmt.Errorf("reading the %s from the hub again: %w", what, err)
			}
		}
		n := int64(-1)
		if info.Size > 0 {
			n = int64(len(prefix)) + int64(base64.StdEncoding.EncodedLen(int(info.Size))) + int64(len(suffix))
		}
		return encodeBody(prefix, suffix, r), n, nil
	}
	timeout := d.s.timeout + time.Duration(info.Size/uploadRate)*time.Second
	env, err := d.s.client.callStream(d.ctx, "crm.timeline.comment.add", open, timeout)
	if first != nil {
		first.Close()
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.class() {
		case classStale:
			return []cmdResult{{err: ae, executed: true}}, nil
		case classPermanent:
			// Too large for the portal, a file it refuses: the message
			// goes on the timeline all the same.
			d.c.log.Warn("the portal refused a WhatsApp file; adding the comment without it", "event_id", ev.ID, "media_id", m.ID, "err", ae)
			return d.plainComment(ev, ref, fmt.Sprintf("the %s could not be attached: the portal refused it (%s)", what, refusal(ae)))
		}
	}
	if err != nil {
		return nil, err
	}
	return []cmdResult{{result: env.Result, executed: true}}, nil
}

// refusal is what a refused upload's error says, shortly.
func refusal(ae *apiError) string {
	switch {
	case ae.code != "" && ae.description != "":
		return ae.code + ": " + ae.description
	case ae.code != "":
		return ae.code
	case ae.description != "":
		return fmt.Sprintf("%d %s", ae.status, ae.description)
	}
	return strconv.Itoa(ae.status)
}

// plainComment adds the comment of an event without its file, noting
// why.
func (d *delivery) plainComment(ev *sdk.Event, ref entityRef, note string) ([]cmdResult, error) {
	id, _ := strconv.ParseUint(ref.ID, 10, 63)
	cmd := command{"crm.timeline.comment.add", obj{{"fields", obj{
		{"ENTITY_ID", id}, {"ENTITY_TYPE", ref.Type}, {"COMMENT", noteText(ev, note)},
	}}}}
	return d.s.client.run(d.ctx, []command{cmd}, false)
}

// fileCommentJSON is the body of crm.timeline.comment.add around the
// file's base64: {"fields":{…,"FILES":[["name","  and  "]]}}.
func fileCommentJSON(entityID uint64, entityType, text, name string) (prefix, suffix []byte, err error) {
	const marker = "\x00file\x00"
	raw, err := json.Marshal(obj{{"fields", obj{
		{"ENTITY_ID", entityID}, {"ENTITY_TYPE", entityType}, {"COMMENT", text},
		{"FILES", [][]string{{name, marker}}},
	}}})
	if err != nil {
		return nil, nil, fmt.Errorf("crm.timeline.comment.add: encode parameters: %w", err)
	}
	quoted, _ := json.Marshal(marker)
	i := bytes.Index(raw, quoted)
	if i < 0 {
		return nil, nil, errors.New("crm.timeline.comment.add: cannot place the file in the request")
	}
	// Keep the quotes: base64 needs no escaping inside a JSON string.
	return raw[:i+1], raw[i+len(quoted)-1:], nil
}

// encodeBody streams prefix, the base64 of r, and suffix; closing it
// stops the encoding and closes r.
func encodeBody(prefix, suffix []byte, r io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(func() error {
			// The encoder writes 1 KiB at a time; each pipe write waits
			// for the transport to take it, so they are gathered.
			w := bufio.NewWriterSize(pw, 64<<10)
			if _, err := w.Write(prefix); err != nil {
				return err
			}
			enc := base64.NewEncoder(base64.StdEncoding, w)
			if _, err := io.Copy(enc, r); err != nil {
				return fmt.Errorf("reading the file from the hub: %w", err)
			}
			if err := enc.Close(); err != nil {
				return err
			}
			if _, err := w.Write(suffix); err != nil {
				return err
			}
			return w.Flush()
		}())
	}()
	return &pipeBody{PipeReader: pr, done: done, src: r}
}

type pipeBody struct {
	*io.PipeReader
	done chan struct{}
	src  io.ReadCloser
	once sync.Once
	err  error
}

// Close ends the writer and waits for it, so that src is no longer read
// when it is closed. Both the HTTP transport and the caller close the
// body, perhaps at once.
func (b *pipeBody) Close() error {
	b.once.Do(func() {
		b.PipeReader.Close()
		<-b.done
		b.err = b.src.Close()
	})
	return b.err
}
