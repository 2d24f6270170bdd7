#pragma once
// Masking of credentials and personal data in text that came from outside (stored payloads,
// plugin log lines, error messages): one hand-written forward scan, no regex, no recursion, so
// time is linear in the input and the stack is constant whatever the input holds.
#include <string>
#include <string_view>

namespace crmhost::redaction {

// The policy, the one shared by the admin API, the logs and the console:
//  - a credential after "Bearer", "Zoho-oauthtoken" or "Basic" (any case) and spaces or tabs:
//    "Bearer [redacted]". After "Basic" only a token that looks encoded (a digit, "+", "/", "="
//    or an upper-case letter after the first), so "Basic plan" stays; after an authorization
//    key ("Authorization: Basic x") always.
//  - the password of a URI: "scheme://user:[redacted]@host".
//  - the value of a secret-like key, written key=value, key: value, "key":"value" (also with
//    \" as in JSON inside a JSON string, or 'value'). A key is secret-like when, lower-cased and
//    without "_", "-" and ".", it contains password, passwd, pwd, passphrase, secret, token,
//    apikey, privatekey or authorization: so db_password, X-Api-Key, hubspotClientSecret,
//    refresh_token, secret_key and private_key all count. A quoted value is masked up to its
//    closing quote (JSON escapes honoured) or the end of the line; a bare value up to a space or
//    one of " ' , & ; } ] \ . null, true, false and empty values are kept.
//  - a PEM private key block: "-----BEGIN ... PRIVATE KEY-----[redacted]-----END ...-----".
//  - email addresses, ASCII or UTF-8 (letters beyond ASCII in the local part and the domain;
//    the domain needs a dot and a top-level label of two or more characters that starts with a
//    letter): "[email]".
//  - card numbers: 13 to 19 digits, alone or in groups of 3 to 6 separated by one space or dash,
//    starting with 2 to 6 (the card networks' ranges) and passing the Luhn check, not glued to
//    letters, digits, "_", "+" (a phone number) or "." (a decimal): "[card]".
//  - US social-security numbers ddd-dd-dddd with a valid area (not 000, 666, 9xx), group (not
//    00) and serial (not 0000): "[ssn]".
// Everything else is copied byte for byte (invalid UTF-8 included: writers that need valid
// UTF-8 repair it themselves). Timestamps, ISO dates, version strings, ids and phone numbers
// that fail Luhn or start with 0, 1, 7, 8, 9 or "+" are kept.
std::string redact(std::string_view text);

// Whether a key names a secret under the policy above (the configuration loader's warning about
// secrets written inline asks the same question).
bool is_secret_key(std::string_view key);

}  // namespace crmhost::redaction
