/*
 * crypto.c: dashboard tokens, their hashes, constant-time comparison and
 * the sealing of provider secrets stored in the database (libsodium
 * secretbox under the 32-byte key in secret_key_file).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "extern.h"

/* The key of secret_key_file, once loaded (crypto_use_key). */
unsigned char	 crypto_key[CRYPTO_KEYBYTES];
int		 crypto_have_key;

/* Load path as the process's key for sealed secrets. */
int
crypto_use_key(const char *path, const char **errstr)
{
	if (crypto_load_key(path, crypto_key, errstr) == -1)
		return -1;
	crypto_have_key = 1;
	return 0;
}

int
crypto_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

/*
 * A new dashboard token: TOKEN_PREFIX and 256 random bits in URL-safe
 * base64, NUL-terminated in out (at least 48 bytes).
 */
void
crypto_token_new(char *out, size_t outlen)
{
	unsigned char	 raw[32];
	size_t		 plen = strlen(TOKEN_PREFIX);

	if (outlen < plen + sodium_base64_ENCODED_LEN(sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING))
		fatalx("crypto_token_new: buffer too small");
	randombytes_buf(raw, sizeof(raw));
	memcpy(out, TOKEN_PREFIX, plen);
	sodium_bin2base64(out + plen, outlen - plen, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

/*
 * What the database keeps of a token: hex SHA-256, in hex (65 bytes).
 * Tokens carry 256 random bits, so an unsalted fast hash is enough and
 * lets a lookup use the unique index.
 */
void
crypto_token_hash(const char *token, char *hex)
{
	crypto_sha256_hex(token, strlen(token), hex);
}

/* Lower-case hex SHA-256 of len bytes into hex (65 bytes). */
void
crypto_sha256_hex(const void *p, size_t len, char *hex)
{
	unsigned char	 h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, p, len);
	util_hex(h, sizeof(h), hex);
}

/* 1 when the n bytes at a and b are equal, in time independent of them. */
int
crypto_ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

/*
 * Secret strings: equal lengths are compared in constant time.  The
 * length itself is not secret (every SDK compares it first).
 */
int
crypto_streq(const char *a, const char *b)
{
	size_t	 la, lb;

	if (a == NULL || b == NULL)
		return 0;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return 0;
	return crypto_ct_equal(a, b, la);
}

/* Read the 32-byte key at path into key; the file must be private. */
int
crypto_load_key(const char *path, unsigned char *key, const char **errstr)
{
	struct stat	 st;
	int		 fd;
	ssize_t		 n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*errstr = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		*errstr = strerror(errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*errstr = "not a regular file";
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		*errstr = "group or others have access (chmod 600)";
		goto fail;
	}
	if (st.st_size != CRYPTO_KEYBYTES) {
		*errstr = "must hold exactly 32 bytes "
		    "(head -c 32 /dev/urandom)";
		goto fail;
	}
	n = read(fd, key, CRYPTO_KEYBYTES);
	if (n != CRYPTO_KEYBYTES) {
		*errstr = n == -1 ? strerror(errno) : "short read";
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* Seal plaintext: base64 of nonce || secretbox.  Caller frees. */
char *
crypto_seal(const unsigned char *key, const char *plain)
{
	size_t		 plen = strlen(plain);
	size_t		 clen = crypto_secretbox_NONCEBYTES +
			    crypto_secretbox_MACBYTES + plen;
	unsigned char	*c;
	char		*b64;
	size_t		 b64len;

	c = xmalloc(clen);
	randombytes_buf(c, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(c + crypto_secretbox_NONCEBYTES,
	    (const unsigned char *)plain, plen, c, key);
	b64len = sodium_base64_ENCODED_LEN(clen,
	    sodium_base64_VARIANT_ORIGINAL);
	b64 = xmalloc(b64len);
	sodium_bin2base64(b64, b64len, c, clen,
	    sodium_base64_VARIANT_ORIGINAL);
	free(c);
	return b64;
}

/* Open what crypto_seal made; NULL if it is not ours.  Caller frees. */
char *
crypto_open(const unsigned char *key, const char *sealed)
{
	size_t		 slen = strlen(sealed), clen;
	unsigned char	*c = NULL;
	char		*plain = NULL;

	c = xmalloc(slen);
	if (sodium_base642bin(c, slen, sealed, slen, NULL, &clen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		goto fail;
	if (clen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		goto fail;
	plain = xmalloc(clen - crypto_secretbox_NONCEBYTES -
	    crypto_secretbox_MACBYTES + 1);
	if (crypto_secretbox_open_easy((unsigned char *)plain,
	    c + crypto_secretbox_NONCEBYTES,
	    clen - crypto_secretbox_NONCEBYTES, c, key) != 0)
		goto fail;
	plain[clen - crypto_secretbox_NONCEBYTES -
	    crypto_secretbox_MACBYTES] = '\0';
	free(c);
	return plain;
fail:
	free(c);
	free(plain);
	return NULL;
}
