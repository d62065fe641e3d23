EXTENSION = eventstore
MODULE_big = eventstore
OBJS = \
	src/eventstore.o \
	src/catalog.o \
	src/registry.o \
	src/stream.o \
	src/append.o \
	src/read.o \
	src/result.o \
	src/feed.o \
	src/decoder.o \
	src/jsonwrite.o \
	src/projection.o \
	src/worker.o \
	src/immutable.o \
	src/slot.o

DATA = $(wildcard sql/eventstore--*.sql)

TESTS = $(wildcard test/sql/*.sql)
REGRESS = $(patsubst test/sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=test --temp-instance=./tmp_check --temp-config=test/eventstore.conf --load-extension=pgtap

ISOLATION = $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec))
ISOLATION_OPTS = --inputdir=test --temp-instance=./tmp_check_iso --temp-config=test/eventstore.conf

TAP_TESTS = 1
PROVE_TESTS = $(wildcard test/t/*.pl)

EXTRA_CLEAN = tmp_check tmp_check_iso results output_iso regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# Server headers are third-party code to us: mark them as system headers so
# builds with -Wextra (see CONTRIBUTING in README.md) report only our code.
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)
include $(PGXS)
