/*
 * kextlog_test.h - the few assertions the C unit tests share.
 *
 * A failed CHECK prints file:line and the expression, and the test goes on
 * so that one run shows every broken behaviour; REQUIRE stops the test when
 * going on would only crash.  kextlog_test_done() gives the exit status.
 */
#ifndef KEXTLOG_TEST_H
#define KEXTLOG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this many failures the rest is noise from the same cause. */
#define KEXTLOG_TEST_MAX_FAILURES 25u

static unsigned long kextlog_test_checks;
static unsigned long kextlog_test_failures;

static void kextlog_test_fail(void)
{
	if (++kextlog_test_failures >= KEXTLOG_TEST_MAX_FAILURES) {
		fprintf(stderr, "too many failures, stopping\n");
		exit(1);
	}
}

#define CHECK(condition) do { \
	kextlog_test_checks++; \
	if (!(condition)) { \
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #condition); \
		kextlog_test_fail(); \
	} \
} while (0)

/* Integers, with both values printed: most checks compare a field. */
#define CHECK_EQ(observed, expected) do { \
	unsigned long long kextlog_observed_ = (unsigned long long)(observed); \
	unsigned long long kextlog_expected_ = (unsigned long long)(expected); \
	kextlog_test_checks++; \
	if (kextlog_observed_ != kextlog_expected_) { \
		fprintf(stderr, "%s:%d: %s is %llu (%#llx), expected %s = %llu (%#llx)\n", \
		    __FILE__, __LINE__, #observed, kextlog_observed_, kextlog_observed_, \
		    #expected, kextlog_expected_, kextlog_expected_); \
		kextlog_test_fail(); \
	} \
} while (0)

#define REQUIRE(condition) do { \
	kextlog_test_checks++; \
	if (!(condition)) { \
		fprintf(stderr, "%s:%d: REQUIRE(%s) failed, stopping\n", __FILE__, __LINE__, \
		    #condition); \
		exit(1); \
	} \
} while (0)

/* A copy of length bytes of data in an allocation of exactly that size (one
 * byte, unused, when length is 0): code under test that reads one byte past
 * what it was given is caught by AddressSanitizer.  kextlog_test_free() it. */
static inline void *kextlog_test_exact(const void *data, size_t length)
{
	unsigned char *copy = calloc(length > 0 ? length : 1, 1);

	REQUIRE(copy != NULL);
	if (length > 0)
		memcpy(copy, data, length);
	return length > 0 ? copy : copy + 1;
}

static inline void kextlog_test_free(void *copy, size_t length)
{
	free(length > 0 ? copy : (unsigned char *)copy - 1);
}

static int kextlog_test_done(const char *name)
{
	if (kextlog_test_failures == 0) {
		printf("%s: %lu checks passed\n", name, kextlog_test_checks);
		return 0;
	}
	printf("%s: %lu of %lu checks FAILED\n", name, kextlog_test_failures, kextlog_test_checks);
	return 1;
}

#endif /* KEXTLOG_TEST_H */
