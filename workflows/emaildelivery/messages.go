// Package emaildelivery is the durable delivery of one e-mail: a workflow that calls the mailer
// until the provider accepts the message or rejects it for good. Starting it twice for the same
// message is a no-op because its workflow ID is derived from the message ID.
package emaildelivery

import "github.com/samplero/samplero/ports"

// The registered names are part of every recorded history: never change them.
const (
	// TaskQueue is the queue every Samplero worker polls.
	TaskQueue = "samplero"
	// WorkflowName is the registered name of Send.
	WorkflowName = "emaildelivery.Send"
	// DeliverActivityName is the registered name of Activities.Deliver.
	DeliverActivityName = "emaildelivery.Deliver"
)

// WorkflowID is the deterministic ID of the delivery of message id.
func WorkflowID(messageID string) string { return "email/" + messageID }

// SendInput is the workflow's one input: the rendered message. It is a workflow message, separate
// from ports.EmailMessage, so that the payload recorded in histories stays stable if the port grows.
type SendInput struct {
	MessageID string `json:"message_id"`
	To        string `json:"to"`
	Subject   string `json:"subject"`
	Text      string `json:"text"`
	HTML      string `json:"html,omitempty"`
	Template  string `json:"template,omitempty"`
}

// SendResult is the workflow's one result.
type SendResult struct {
	ProviderID string `json:"provider_id"`
}

// InputFrom maps a port message to the workflow input.
func InputFrom(msg ports.EmailMessage) SendInput {
	return SendInput{
		MessageID: msg.ID,
		To:        msg.To,
		Subject:   msg.Subject,
		Text:      msg.Text,
		HTML:      msg.HTML,
		Template:  msg.Template,
	}
}

// Message maps the workflow input back to the port message.
func (in SendInput) Message() ports.EmailMessage {
	return ports.EmailMessage{
		ID:       in.MessageID,
		To:       in.To,
		Subject:  in.Subject,
		Text:     in.Text,
		HTML:     in.HTML,
		Template: in.Template,
	}
}
