package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// Catalogue state lives in the cursors table.
const (
	cursorTemplatesRefreshed = "templates:refreshed" // Unix ms of the last complete fetch
	cursorTemplatesError     = "templates:error"     // why the last fetch failed ("" after a success)
)

// Catalogue is the template catalogue as the admin API shows it.
type Catalogue struct {
	Templates []templates.Template `json:"templates"`
	// RefreshedAt is when the last complete fetch from the Graph API
	// began; nil when there has been none (then only what webhooks said
	// is known, and unknown templates are not refused).
	RefreshedAt *time.Time `json:"refreshed_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// LastAttemptAt is when a fetch last ended, successful or not.
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
}

// ReplaceTemplates stores a complete fetch of the catalogue that began at
// asOf: every template in list is written, and templates the fetch did not
// return are removed — except rows a webhook wrote after asOf, which are
// newer than what the fetch saw.
func (s *Store) ReplaceTemplates(ctx context.Context, list []templates.Template, asOf time.Time) (added, changed, removed int, err error) {
	var res struct{ Added, Changed, Removed int }
	err = s.write(ctx, func(tx *txn) error {
		res.Added, res.Changed, res.Removed = 0, 0, 0
		now, at := s.now().UnixMilli(), asOf.UnixMilli()
		seen := map[[2]string]bool{}
		for _, t := range list {
			lang := templates.NormalizeLanguage(t.Language)
			seen[[2]string{t.Name, lang}] = true
			var comps sql.NullString
			if len(t.Components) > 0 {
				comps = sql.NullString{String: string(t.Components), Valid: true}
			}
			var old struct {
				id, category, status, quality, format string
				comps                                 sql.NullString
				asOf                                  int64
			}
			err := tx.QueryRow(`SELECT id, category, status, quality, parameter_format, components, as_of
				FROM templates WHERE name = ? AND language = ?`, t.Name, lang).
				Scan(&old.id, &old.category, &old.status, &old.quality, &old.format, &old.comps, &old.asOf)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res.Added++
			case err != nil:
				return err
			case old.asOf > at:
				continue // a webhook after the fetch began knows better
			case old.id != t.ID || old.category != t.Category || old.status != t.Status || old.quality != t.Quality ||
				old.format != t.ParameterFormat || old.comps != comps:
				res.Changed++
			}
			if _, err := tx.Exec(`INSERT INTO templates
				(name, language, id, category, status, quality, reason, parameter_format, components, source, as_of, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, 'graph', ?, ?)
				ON CONFLICT (name, language) DO UPDATE SET id = excluded.id, category = excluded.category,
					status = excluded.status, quality = excluded.quality,
					reason = CASE WHEN templates.status = excluded.status THEN templates.reason ELSE '' END,
					parameter_format = excluded.parameter_format, components = excluded.components,
					source = 'graph', as_of = excluded.as_of, updated_at = excluded.updated_at`,
				t.Name, lang, t.ID, t.Category, t.Status, t.Quality, t.ParameterFormat, comps, at, now); err != nil {
				return err
			}
		}
		rows, err := tx.Query(`SELECT name, language FROM templates WHERE as_of <= ?`, at)
		if err != nil {
			return err
		}
		var gone [][2]string
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return err
			}
			if !seen[k] {
				gone = append(gone, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range gone {
			if _, err := tx.Exec(`DELETE FROM templates WHERE name = ? AND language = ?`, k[0], k[1]); err != nil {
				return err
			}
			res.Removed++
		}
		if err := writeCursor(tx, cursorTemplatesRefreshed, strconv.FormatInt(at, 10), now); err != nil {
			return err
		}
		return writeCursor(tx, cursorTemplatesError, "", now)
	})
	return res.Added, res.Changed, res.Removed, err
}

// TemplateRefreshFailed records why a fetch failed; the catalogue keeps
// what it had.
func (s *Store) TemplateRefreshFailed(ctx context.Context, reason string) error {
	return s.write(ctx, func(tx *txn) error {
		return writeCursor(tx, cursorTemplatesError, reason, s.now().UnixMilli())
	})
}

// TemplateCatalogue is every template, by name then language.
func (s *Store) TemplateCatalogue(ctx context.Context) (Catalogue, error) {
	var c Catalogue
	rows, err := s.reader.QueryContext(ctx, templateSelect+` ORDER BY name, language`)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	c.Templates = []templates.Template{}
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return c, err
		}
		c.Templates = append(c.Templates, t)
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	refreshed, _, err := s.cursorValue(ctx, cursorTemplatesRefreshed)
	if err != nil {
		return c, err
	}
	if ms, err := strconv.ParseInt(refreshed, 10, 64); err == nil && ms > 0 {
		t := time.UnixMilli(ms).UTC()
		c.RefreshedAt = &t
	}
	msg, at, err := s.cursorValue(ctx, cursorTemplatesError)
	if err != nil {
		return c, err
	}
	c.LastError = msg
	if !at.IsZero() {
		c.LastAttemptAt = &at
	}
	return c, nil
}

// TemplateVersions is every language of the template name, and whether
// the catalogue has been fetched completely (known): only then does a
// template missing from it not exist.
func (s *Store) TemplateVersions(ctx context.Context, name string) ([]templates.Template, bool, error) {
	rows, err := s.reader.QueryContext(ctx, templateSelect+` WHERE name = ? ORDER BY language`, name)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []templates.Template
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	refreshed, _, err := s.cursorValue(ctx, cursorTemplatesRefreshed)
	return out, refreshed != "" && refreshed != "0", err
}

func (s *Store) cursorValue(ctx context.Context, name string) (string, time.Time, error) {
	var v string
	var at int64
	err := s.reader.QueryRowContext(ctx, `SELECT value, updated_at FROM cursors WHERE name = ?`, name).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return v, time.UnixMilli(at).UTC(), nil
}

const templateSelect = `SELECT name, language, id, category, status, quality, reason, parameter_format, components, source, updated_at FROM templates`

func scanTemplate(row interface{ Scan(...any) error }) (templates.Template, error) {
	var t templates.Template
	var comps sql.NullString
	var updated int64
	if err := row.Scan(&t.Name, &t.Language, &t.ID, &t.Category, &t.Status, &t.Quality, &t.Reason,
		&t.ParameterFormat, &comps, &t.Source, &updated); err != nil {
		return t, err
	}
	t.UpdatedAt = time.UnixMilli(updated).UTC()
	if comps.Valid {
		t.Components = json.RawMessage(comps.String)
		// A row the store wrote has components Graph listed; one that no
		// longer parses is served without parameters rather than not at all.
		t.Parameters, _ = templates.Derive(t.Components)
	}
	return t, nil
}

// applyTemplateEvent updates the catalogue from a template webhook, in
// the commit that logs it: once Meta has its 200, the next send sees the
// change. The update dates from when the hub received it: Meta retries
// only what the hub did not commit (a duplicate adds no event and changes
// nothing here), and a fetch that began before it cannot undo it.
func (s *Store) applyTemplateEvent(tx *txn, ev *sdk.Event) error {
	u, ok := templates.FromWebhook(string(ev.Type), ev.Raw)
	if !ok {
		return nil
	}
	at, now := ev.ReceivedAt.UnixMilli(), s.now().UnixMilli()
	status := u.Status
	if status == "" {
		status = "APPROVED" // a category or quality change is news of an existing, approved template
	}
	_, err := tx.Exec(`INSERT INTO templates (name, language, id, category, status, quality, reason, source, as_of, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'webhook', ?, ?)
		ON CONFLICT (name, language) DO UPDATE SET
			id = CASE WHEN excluded.id <> '' THEN excluded.id ELSE templates.id END,
			category = CASE WHEN excluded.category <> '' THEN excluded.category ELSE templates.category END,
			status = CASE WHEN ? <> '' THEN excluded.status ELSE templates.status END,
			reason = CASE WHEN ? <> '' THEN excluded.reason ELSE templates.reason END,
			quality = CASE WHEN excluded.quality <> '' THEN excluded.quality ELSE templates.quality END,
			source = 'webhook', as_of = excluded.as_of, updated_at = excluded.updated_at
		WHERE templates.as_of <= excluded.as_of`,
		u.Name, u.Language, u.ID, u.Category, status, u.Quality, u.Reason, at, now, u.Status, u.Status)
	return err
}
