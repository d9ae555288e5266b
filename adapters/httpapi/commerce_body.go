package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/samplero/samplero/core/errs"
)

// Request bodies are streamed (fiber.Config.StreamRequestBody, see New) so that an asset upload of
// up to MaxAssetBytes goes to the object store without being held in memory. Streaming turns off
// fasthttp's own BodyLimit, so this file puts it back for every other route:
//
//   - headerReceived runs once a request's headers are in. A body declared above BodyLimit is
//     refused before a byte of it is read (as fasthttp did without streaming): the read deadline is
//     set in the past, so the read that fasthttp starts before calling any handler fails at once,
//     and serverError answers 413 BODY_TOO_LARGE for it. fasthttp resets the request when that read
//     fails, so headerReceived keeps a copy of the headers for serverError to answer with (the
//     device API signs its 413 over the path and nonce of the request).
//   - bodyLimit, the first middleware after edge, reads a chunked body up to the limit and no
//     further, and reads a body within the limit into memory so that handlers see it whole.
//   - the asset upload passes both untouched (with a longer read deadline); its handler streams the
//     body and applies MaxAssetBytes. File downloads get a longer write deadline likewise.
//
// A body left unread on a connection would be parsed as the next request, so every answer given
// without reading the body closes the connection.

// oversize is a request refused by headerReceived: its headers, and when it was refused.
type oversize struct {
	at     time.Time
	header *fasthttp.RequestHeader
}

// oversizeWindow bounds how long a refusal waits for serverError: the failing read follows at once.
// A mark left behind (the client went away first) is then never mistaken for a later request's.
const oversizeWindow = time.Second

var filesPrefix = []byte("/v1/files/")

// requestPath is the path of a request URI, without its query.
func requestPath(uri []byte) string {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return string(uri)
}

// isAssetUploadPath reports whether path is /v1/admin/products/{slug}/versions/{id}/asset: the one
// route whose body may exceed BodyLimit (it is streamed to the object store).
func isAssetUploadPath(path string) bool {
	parts := strings.Split(path, "/")
	return len(parts) == 8 && parts[0] == "" && parts[1] == "v1" && parts[2] == "admin" && parts[3] == "products" &&
		parts[4] != "" && parts[5] == "versions" && parts[6] != "" && parts[7] == "asset"
}

// bodyMarks holds the oversize refusals by the header they came with (one per connection: fasthttp
// reuses a connection's request for each of its requests).
type bodyMarks struct{ m sync.Map } // *fasthttp.RequestHeader → oversize

// headerReceived sets the deadlines of a request once its headers are in: a long read for the asset
// upload, a long write for a file download (ReadTimeout and WriteTimeout bound a whole request or
// answer), and a read already past for a body declared above BodyLimit.
func (a *api) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	// Every request passes here (device requests included): no allocation on the common path.
	if h.IsPut() && isAssetUploadPath(requestPath(h.RequestURI())) {
		a.marks.m.Delete(h)
		return fasthttp.RequestConfig{ReadTimeout: transferTimeout}
	}
	if (h.IsGet() || h.IsHead()) && bytes.HasPrefix(h.RequestURI(), filesPrefix) {
		a.marks.m.Delete(h)
		return fasthttp.RequestConfig{WriteTimeout: transferTimeout}
	}
	if h.ContentLength() > a.cfg.BodyLimit {
		now := time.Now()
		// A mark whose read never failed (the client hung up first) would pin its connection's
		// request in memory: marks past their window go whenever a new one comes.
		a.marks.m.Range(func(k, v any) bool {
			if now.Sub(v.(oversize).at) >= oversizeWindow {
				a.marks.m.Delete(k)
			}
			return true
		})
		saved := new(fasthttp.RequestHeader)
		h.CopyTo(saved)
		a.marks.m.Store(h, oversize{at: now, header: saved})
		return fasthttp.RequestConfig{ReadTimeout: time.Nanosecond}
	}
	a.marks.m.Delete(h)
	return fasthttp.RequestConfig{}
}

// serverError is Fiber's error handler: errors fasthttp meets before any handler runs (a request it
// cannot read) and those the handler chain returns past edge. The failed read of a body refused by
// headerReceived becomes BODY_TOO_LARGE, answered for the request as it came.
func (a *api) serverError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if v, ok := a.marks.m.LoadAndDelete(&c.Request().Header); ok {
		if errors.As(err, &fe) && fe.Code == fiber.StatusRequestTimeout {
			if m := v.(oversize); time.Since(m.at) < oversizeWindow {
				m.header.CopyTo(&c.Request().Header)
				c.Request().SetRequestURIBytes(m.header.RequestURI()) // URI() parses it again
				// Fiber read the method and path of the reset request when it made c.
				c.Method(string(m.header.Method()))
				c.Path(string(c.Request().URI().Path()))
				c.Response().SetConnectionClose()
				err = errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", a.cfg.BodyLimit))
			}
		}
	}
	return a.errorHandler(c, err)
}

// bodyLimit applies BodyLimit to the streamed body of every route but the asset upload.
func (a *api) bodyLimit(c *fiber.Ctx) error {
	req := c.Request()
	if c.Method() == fiber.MethodPut && isAssetUploadPath(c.Path()) {
		err := c.Next()
		if req.IsBodyStream() {
			c.Response().SetConnectionClose()
		}
		return err
	}
	if !req.IsBodyStream() {
		return c.Next()
	}
	limit := a.cfg.BodyLimit
	if req.Header.ContentLength() > limit {
		// headerReceived refused it, but its first kilobytes were already buffered.
		a.marks.m.Delete(&req.Header)
		c.Response().SetConnectionClose()
		return errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
	}
	// Read one byte more than the limit, to tell "exactly the limit" from "above it" when the body
	// is chunked and declares no length.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(req.Header.ContentLength(), 0), limit)+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(req.BodyStream(), int64(limit)+1))
	b := buf.Bytes()
	if err != nil {
		c.Response().SetConnectionClose()
		return errs.E(errs.Invalid, "BAD_REQUEST", "the request body could not be read")
	}
	if len(b) > limit {
		c.Response().SetConnectionClose()
		return errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
	}
	req.SetBodyRaw(b) // ends the stream; handlers read the body from memory (b is ours alone)
	return c.Next()
}
