package kmsfake

import (
	"encoding/json"
	"net/http"
)

// apiError is an error answer: the JSON {"__type": Type, "message": Message} with HTTP status Status.
type apiError struct {
	Status  int
	Type    string
	Message string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func (e *apiError) write(w http.ResponseWriter) {
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.Type, e.Message})
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

func newError(status int, typ, msg string) *apiError {
	return &apiError{Status: status, Type: typ, Message: msg}
}

var (
	errMissingAuth        = newError(http.StatusBadRequest, "MissingAuthenticationTokenException", "Request is missing Authentication Token")
	errUnrecognizedClient = newError(http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
)

func incompleteSignature(msg string) *apiError {
	return newError(http.StatusBadRequest, "IncompleteSignatureException", msg)
}

func invalidSignature(msg string) *apiError {
	return newError(http.StatusBadRequest, "InvalidSignatureException", msg)
}

func validation(msg string) *apiError {
	return newError(http.StatusBadRequest, "ValidationException", msg)
}

func serialization(msg string) *apiError {
	return newError(http.StatusBadRequest, "SerializationException", msg)
}

func accessDenied(msg string) *apiError {
	return newError(http.StatusBadRequest, "AccessDeniedException", msg)
}

func invalidKeyUsage(msg string) *apiError {
	return newError(http.StatusBadRequest, "InvalidKeyUsageException", msg)
}

func internalError(err error) *apiError {
	return newError(http.StatusInternalServerError, "KMSInternalException", err.Error())
}

func notFound(msg string) *apiError {
	return newError(http.StatusBadRequest, "NotFoundException", msg)
}

var errInvalidCiphertext = newError(http.StatusBadRequest, "InvalidCiphertextException", "")
