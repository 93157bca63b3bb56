package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/wahub/wahub/sdk"
)

// LatestInbound is the wamid of the newest message the customer contactKey
// sent to business number phoneNumberID ("" when none): the message an
// agent's answer marks read.
func (s *Store) LatestInbound(ctx context.Context, contactKey, phoneNumberID string) (string, error) {
	var body []byte
	err := s.reader.QueryRowContext(ctx, `SELECT body FROM events
		WHERE contact_key = ? AND phone_number_id = ? AND type IN (?, ?)
		ORDER BY seq DESC LIMIT 1`, contactKey, phoneNumberID, sdk.TypeMessageReceived, sdk.TypeButtonClicked).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var ev struct {
		Message *struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Message == nil {
		return "", nil
	}
	return ev.Message.ID, nil
}
