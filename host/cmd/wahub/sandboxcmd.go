package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/plugins/slack/slacktest"
)

func newSandboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Play the other side of the sandbox's fakes",
	}
	var target, connector, thread, to, text string
	var files []string
	var wait time.Duration
	reply := &cobra.Command{
		Use:   "slack-reply --text TEXT [--file PATH]... [--to CUSTOMER | --thread TS]",
		Short: "Post a signed Slack agent reply into a conversation's thread, as Slack's Events API would",
		Long: "Find the conversation thread in the sandbox's fake Slack (the customer's with --to, the one\n" +
			"whose root is --thread TS, or the newest), and POST a human message in it to /hooks/<connector>,\n" +
			"signed with the connector's signing secret, as Slack does when an agent answers. Then follow\n" +
			"what the hub does with it: the WhatsApp message the Slack plugin queued and its state (accepted,\n" +
			"sent, delivered, read), or the refusal posted in the thread. Exit 1 when it was not sent.\n" +
			"With --file the agent attaches files: each is uploaded to the fake Slack first (as an agent's\n" +
			"upload is) and the message carries it, so the Slack plugin sends it as a WhatsApp media message.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if text == "" && len(files) == 0 {
				return usageErr(errors.New("sandbox slack-reply: --text or --file is required"))
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if !cfg.Sandbox {
				return usageErr(errors.New("config: sandbox: false; slack-reply plays the sandbox's fake Slack"))
			}
			secret := slacktest.DefaultSigningSecret
			if cc, ok := cfg.Connectors[connector]; ok {
				if v, _ := cc.Config.Reveal()["signing_secret"].(string); v != "" {
					secret = v
				}
			}
			base, err := webhookURL(target, cfg.Server.Listen)
			if err != nil {
				return usageErr(err)
			}
			base = strings.TrimSuffix(base, "/webhooks/whatsapp")
			cl := &http.Client{Timeout: 30 * time.Second}
			// Slack posts are paced (about one a second, as Slack's API
			// limits them), so right after simulate the customer's thread
			// may not be there yet: wait for it.
			channel, ts, err := sandboxThread(cl, base, thread, to)
			for deadline := time.Now().Add(wait); err != nil && errors.Is(err, errNoThread) && time.Now().Before(deadline); {
				time.Sleep(500 * time.Millisecond)
				channel, ts, err = sandboxThread(cl, base, thread, to)
			}
			if err != nil {
				return runtimeErr(err)
			}
			token := slacktest.DefaultToken
			if cc, ok := cfg.Connectors[connector]; ok {
				if v, _ := cc.Config.Reveal()["token"].(string); v != "" {
					token = v
				}
			}
			var attached []json.RawMessage
			var fileIDs []string
			for _, p := range files {
				obj, id, err := sandboxSlackUpload(cl, base+"/sandbox/slack/", token, p)
				if err != nil {
					return runtimeErr(err)
				}
				attached, fileIDs = append(attached, obj), append(fileIDs, id)
			}
			now := time.Now()
			evTS := strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64)
			eventID := "Ev" + strconv.FormatInt(now.UnixNano(), 36)
			ev := slacktest.MessageEvent{
				User: "U0AGENT", Text: text, TS: evTS, ThreadTS: ts, Channel: channel, Files: attached,
			}
			if len(attached) > 0 {
				ev.SubType = "file_share" // as Slack marks a message with uploads
			}
			body := slacktest.EventCallback(eventID, now, ev)
			// What the thread said before: a refusal of this reply's file
			// is a newer notice (it may come before the hook's answer).
			before := threadNotice(cl, base, ts)
			req, err := http.NewRequest(http.MethodPost, base+"/hooks/"+connector, bytes.NewReader(body))
			if err != nil {
				return runtimeErr(err)
			}
			for k, v := range slacktest.SignedEvent(secret, now, body) {
				req.Header[k] = v
			}
			resp, err := cl.Do(req)
			if err != nil {
				return runtimeErr(fmt.Errorf("POST /hooks/%s: %w (is `wahub serve` running?)", connector, err))
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode/100 != 2 {
				return runtimeErr(fmt.Errorf("POST /hooks/%s (thread %s of %s): the hub answered %d %s",
					connector, ts, channel, resp.StatusCode, strings.TrimSpace(string(answer))))
			}
			fmt.Fprintf(g.stdout, "agent reply posted in thread %s of %s (Slack event %s)\n", ts, channel, eventID)
			api, err := g.client(target)
			if err != nil {
				return err
			}
			if len(fileIDs) == 0 {
				return followReply(g.stdout, api, cl, base, "connector:"+connector, eventID, ts, wait)
			}
			// A reply with files is sent after the hook answered (the
			// plugin first downloads each file): one WhatsApp message per
			// file, keyed by the event and the file.
			var failed error
			for _, id := range fileIDs {
				if err := followFile(g.stdout, api, cl, base, "connector:"+connector, eventID+":"+id, ts, before, wait); err != nil {
					failed = err
				}
			}
			return failed
		},
	}
	f := reply.Flags()
	f.StringVar(&target, "url", "", "the hub's base URL (default: the configured listen address)")
	f.StringVar(&connector, "connector", "slack", "the Slack connector's name")
	f.StringVar(&thread, "thread", "", "the thread's root ts (default: the newest conversation)")
	f.StringVar(&to, "to", "", "the customer's conversation: their number (wa_id) or name")
	f.StringVar(&text, "text", "", "what the agent writes")
	f.StringArrayVar(&files, "file", nil, "a file the agent attaches (repeat for several)")
	f.DurationVar(&wait, "wait", time.Minute, "how long to wait for the thread, and to follow the WhatsApp message's state")
	cmd.AddCommand(reply, newSandboxResetCmd(g))
	return cmd
}

// newSandboxResetCmd deletes a sandbox's store, so that the tour can be
// walked again from nothing. The fakes keep their state in the hub's
// memory, so a stopped hub has none: the hub must be stopped first.
func newSandboxResetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reset",
		Short: "Start the sandbox over: delete its store (the hub must be stopped)",
		Long: "Delete the store of a sandbox configuration (store.path and its -wal and -shm files), so that\n" +
			"the next wahub serve starts with no events, contacts or conversations, and the fakes (which live\n" +
			"in the hub process) start empty too. Refused when the configuration is not a sandbox, and while\n" +
			"a hub answers on server.listen.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if !cfg.Sandbox {
				return usageErr(errors.New("config: sandbox: false; sandbox reset deletes only a sandbox's store (for a production store, see wahub backup)"))
			}
			cl := &http.Client{Timeout: 2 * time.Second}
			if resp, err := cl.Get("http://" + cfg.Server.Listen + "/healthz"); err == nil {
				resp.Body.Close()
				return runtimeErr(fmt.Errorf("a hub is running on %s: stop it first (Ctrl-C in its terminal), then run wahub sandbox reset again", cfg.Server.Listen))
			}
			// A hub on another address still holds the store's lock.
			lock, err := store.AcquireLock(cfg.Store.Path)
			if err != nil {
				return runtimeErr(fmt.Errorf("sandbox reset: %w: stop it first", err))
			}
			defer lock.Release()
			removed := 0
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				p := cfg.Store.Path + suffix
				switch err := os.Remove(p); {
				case err == nil:
					removed++
					fmt.Fprintf(g.stdout, "removed %s\n", p)
				case !errors.Is(err, os.ErrNotExist):
					return runtimeErr(fmt.Errorf("sandbox reset: %w", err))
				}
			}
			if removed == 0 {
				fmt.Fprintf(g.stdout, "nothing to reset: no store at %s\n", cfg.Store.Path)
				return nil
			}
			fmt.Fprintln(g.stdout, "the sandbox starts empty at the next wahub serve")
			return nil
		},
	}
}

// errNoThread: the fake Slack has no such conversation thread (yet).
var errNoThread = errors.New("no conversation thread")

// sandboxThread finds a conversation thread in the fake Slack's snapshot:
// the one whose root is want, else the newest one whose root names the
// customer who (their number or name; the Slack plugin's root message
// reads "New WhatsApp conversation with NAME (+NUMBER), …"), else the
// newest.
func sandboxThread(cl *http.Client, base, want, who string) (channel, ts string, err error) {
	resp, err := cl.Get(base + "/sandbox?format=json")
	if err != nil {
		return "", "", fmt.Errorf("GET /sandbox: %w (is `wahub serve` running with sandbox: true?)", err)
	}
	defer resp.Body.Close()
	var snap struct {
		Slack struct {
			Channels map[string][]struct {
				Channel  string `json:"channel"`
				TS       string `json:"ts"`
				ThreadTS string `json:"thread_ts"`
				Text     string `json:"text"`
			} `json:"channels"`
		} `json:"slack"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return "", "", fmt.Errorf("GET /sandbox: %w", err)
	}
	for ch, threads := range snap.Slack.Channels {
		for _, t := range threads {
			if want != "" && t.TS == want {
				return ch, t.TS, nil
			}
			if who != "" && !strings.Contains(t.Text, "(+"+strings.TrimPrefix(who, "+")+")") &&
				!strings.Contains(t.Text, "with "+who+" ") && !strings.Contains(t.Text, "with "+who+",") {
				continue
			}
			if want == "" && t.TS > ts {
				channel, ts = ch, t.TS
			}
		}
	}
	if ts == "" {
		if want != "" {
			return "", "", fmt.Errorf("%w %s in the fake Slack", errNoThread, want)
		}
		if who != "" {
			return "", "", fmt.Errorf("%w with %s in the fake Slack (GET /sandbox lists them)", errNoThread, who)
		}
		return "", "", fmt.Errorf("%w yet: post a customer message first (wahub simulate --now testdata/whatsapp/text.json)", errNoThread)
	}
	return channel, ts, nil
}

// sandboxSlackUpload uploads the file at path to the fake Slack at api
// (its api_url) the way Slack's own clients do — files.getUploadURLExternal,
// the bytes streamed to the upload URL, files.completeUploadExternal
// (shared nowhere yet: the message event carries it) — and returns the
// file object files.info gives, as a message event's files[] holds it.
func sandboxSlackUpload(cl *http.Client, api, token, path string) (json.RawMessage, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("sandbox slack-reply --file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("sandbox slack-reply --file: %w", err)
	}
	name := filepath.Base(path)
	call := func(method string, form url.Values, out any) error {
		req, err := http.NewRequest(http.MethodPost, api+method, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cl.Do(req)
		if err != nil {
			return fmt.Errorf("fake Slack %s: %w (is `wahub serve` running with sandbox: true?)", method, err)
		}
		defer resp.Body.Close()
		var ok struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err := json.Unmarshal(raw, &ok); err != nil || !ok.OK {
			return fmt.Errorf("fake Slack %s: %d %s %s", method, resp.StatusCode, ok.Error, strings.TrimSpace(string(raw)))
		}
		return json.Unmarshal(raw, out)
	}
	var ticket struct {
		UploadURL string `json:"upload_url"`
		FileID    string `json:"file_id"`
	}
	if err := call("files.getUploadURLExternal", url.Values{"filename": {name}, "length": {strconv.FormatInt(st.Size(), 10)}}, &ticket); err != nil {
		return nil, "", err
	}
	req, err := http.NewRequest(http.MethodPost, ticket.UploadURL, f)
	if err != nil {
		return nil, "", err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := cl.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fake Slack upload of %s: %w", name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("fake Slack upload of %s: %s", name, resp.Status)
	}
	files, _ := json.Marshal([]map[string]string{{"id": ticket.FileID, "title": name}})
	var done struct{}
	if err := call("files.completeUploadExternal", url.Values{"files": {string(files)}}, &done); err != nil {
		return nil, "", err
	}
	var info struct {
		File json.RawMessage `json:"file"`
	}
	if err := call("files.info", url.Values{"file": {ticket.FileID}}, &info); err != nil {
		return nil, "", err
	}
	return info.File, ticket.FileID, nil
}

// followFile waits (up to wait) for the WhatsApp message the Slack
// plugin queues for one attached file, or for the note it posts in the
// thread when the file cannot be sent (a notice other than before, the
// thread's newest before the reply), then follows the message as
// followReply does.
func followFile(w io.Writer, api *apiClient, cl *http.Client, base, source, key, threadTS, before string, wait time.Duration) error {
	path := "/api/v1/messages?source=" + url.QueryEscape(source) + "&idempotency_key=" + url.QueryEscape(key)
	var rec store.OutboundRecord
	for deadline := time.Now().Add(wait); ; {
		if api.call(http.MethodGet, path, nil, &rec) == nil {
			break
		}
		if why := threadNotice(cl, base, threadTS); why != "" && why != before {
			fmt.Fprintf(w, "not sent to WhatsApp; the Slack plugin answered in the thread: %s\n", why)
			return runtimeErr(errors.New("the file was not sent"))
		}
		if time.Now().After(deadline) {
			return runtimeErr(fmt.Errorf("the Slack plugin queued no WhatsApp message for the file within %s (key %s)", wait, key))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return followReply(w, api, cl, base, source, key, threadTS, wait)
}

// followReply reports what became of the agent's reply: the outbound
// message the Slack plugin queued (its state as it moves on, until the
// customer read it, it failed, or wait ends), or, when the plugin queued
// none, the refusal it posted in the thread.
func followReply(w io.Writer, api *apiClient, cl *http.Client, base, source, key, threadTS string, wait time.Duration) error {
	path := "/api/v1/messages?source=" + url.QueryEscape(source) + "&idempotency_key=" + url.QueryEscape(key)
	var rec store.OutboundRecord
	if err := api.call(http.MethodGet, path, nil, &rec); err != nil {
		// No message: the plugin refused the reply or it was a note; the
		// thread says which.
		if why := threadNotice(cl, base, threadTS); why != "" {
			fmt.Fprintf(w, "not sent to WhatsApp; the Slack plugin answered in the thread: %s\n", why)
			return runtimeErr(errors.New("the reply was not sent"))
		}
		return runtimeErr(fmt.Errorf("the Slack plugin queued no WhatsApp message for the reply: %w", err))
	}
	fmt.Fprintf(w, "WhatsApp message %s to %s: %s", rec.ID, rec.To, rec.State)
	shown := rec.State
	deadline := time.Now().Add(wait)
	for !replySettled(rec.State) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if err := api.call(http.MethodGet, "/api/v1/messages/"+url.PathEscape(rec.ID), nil, &rec); err != nil {
			fmt.Fprintln(w)
			return err
		}
		if rec.State != shown {
			fmt.Fprintf(w, " → %s", rec.State)
			shown = rec.State
		}
	}
	fmt.Fprintln(w)
	switch {
	case rec.State == store.OutFailed:
		return runtimeErr(fmt.Errorf("message %s failed: %s %s", rec.ID, rec.ErrorCode, rec.Error))
	case !replySettled(rec.State):
		fmt.Fprintf(w, "(still %s after %s: wahub send --status %s follows it)\n", rec.State, wait, rec.ID)
	}
	return nil
}

func replySettled(state string) bool {
	return state == store.OutRead || state == store.OutFailed
}

// threadNotice is the newest warning the Slack plugin posted in a thread
// of the fake Slack ("" if none).
func threadNotice(cl *http.Client, base, threadTS string) string {
	resp, err := cl.Get(base + "/sandbox?format=json")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var snap struct {
		Slack struct {
			Channels map[string][]struct {
				TS      string `json:"ts"`
				Replies []struct {
					Text  string `json:"text"`
					BotID string `json:"bot_id"`
				} `json:"replies"`
			} `json:"channels"`
		} `json:"slack"`
	}
	if json.NewDecoder(resp.Body).Decode(&snap) != nil {
		return ""
	}
	notice := ""
	for _, threads := range snap.Slack.Channels {
		for _, t := range threads {
			if t.TS != threadTS {
				continue
			}
			for _, r := range t.Replies {
				// The Slack plugin's refusal (plugins/slack/hook.go).
				if t := strings.TrimSpace(strings.TrimPrefix(r.Text, ":warning:")); r.BotID != "" &&
					(strings.HasPrefix(t, "Not delivered") || strings.HasPrefix(t, "Not sent to WhatsApp")) {
					notice = t
				}
			}
		}
	}
	return notice
}
