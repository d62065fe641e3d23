EXTENSION = eventstore

# Plain "make" builds the module: the rules of the built SQL scripts below
# come before PGXS's "all" and would otherwise be the default goal.
.DEFAULT_GOAL := all

MODULE_big = eventstore
OBJS = \
	src/eventstore.o \
	src/preload.o \
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
	src/projection_batch.o \
	src/worker.o \
	src/immutable.o \
	src/slot.o \
	src/caller.o \
	src/subscription.o \
	src/poll.o

EXTVERSION = 0.2.0

# The install script of this version and the upgrade script from 0.1.0 are
# built from one source of every function (sql/functions.sql), so both end
# the same (test/t/006_upgrade.pl compares them).  0.1.0's install script
# is kept as shipped, for upgrades.  When a later version starts, commit
# the built upgrade scripts of this one as they are.
DATA = sql/eventstore--0.1.0.sql
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--0.1.0--$(EXTVERSION).sql

SQL_GUARD = \\echo Use "CREATE EXTENSION eventstore" to load this file. \\quit

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/schema.sql sql/functions.sql sql/install.post.sql
	{ echo '$(SQL_GUARD)'; cat $^; } > $@

sql/$(EXTENSION)--0.1.0--$(EXTVERSION).sql: sql/migrate--0.1.0--$(EXTVERSION).sql sql/functions.sql sql/migrate--0.1.0--$(EXTVERSION).post.sql
	{ echo '$(SQL_GUARD)'; cat $^; } > $@

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
# Benchmark builds only (make BENCHMARK=1): switches that break a guarantee
# to measure its cost, such as eventstore.debug_skip_registry.
ifdef BENCHMARK
PG_CPPFLAGS += -DEVENTSTORE_BENCHMARK
endif
include $(PGXS)
