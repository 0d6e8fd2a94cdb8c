#!/usr/bin/env bash
# Regenerates omni_limit_lua.h from omni_limit.lua and
# omni_limit_batch.lua, byte for byte: run it by hand after editing
# either (make unit fails while they differ).
# Refuses tabs, non-ASCII bytes and lines too long for 80 columns once
# escaped, leaving the header as it was.
set -eu
cd "$(dirname "$0")"

tmp=$(mktemp omni_limit_lua.h.XXXXXX)
trap 'rm -f "$tmp"' EXIT

LC_ALL=C perl -e '
    my $bad = 0;

    # the C string literal lines of a file, "" when it is split
    sub literals {
        my ($src, $split) = @_;
        open(my $in, "<", $src) or die "$src: $!\n";
        binmode($in);
        my @parts = ([]);
        while (my $line = <$in>) {
            if (defined $split && $line eq "$split\n") {
                push @parts, [];
                next;
            }
            my $nl = $line =~ s/\n\z// ? "\\n" : "";
            if ($line =~ /[^\x20-\x7e]/) {
                print STDERR "$src:$.: tab, control or non-ASCII byte\n";
                $bad = 1;
            }
            (my $esc = $line) =~ s/([\\"])/\\$1/g;
            my $lit = "    \"$esc$nl\"";
            if (length($lit) > 78) {
                printf STDERR "$src:$.: %d columns once escaped (max 70)\n",
                    length($esc);
                $bad = 1;
            }
            push @{$parts[-1]}, $lit;
        }
        die "$src: expected the line \"$split\" once\n"
            if defined $split && @parts != 2;
        for (@parts) {
            die "$src: empty part\n" unless @$_;
        }
        return @parts;
    }

    sub define {
        my ($name, @lits) = @_;
        for my $lit ("#define $name", @lits[0 .. $#lits - 1]) {
            printf "%-78s\\\n", $lit;
        }
        print $lits[-1], "\n\n\n";
    }

    my ($one) = literals("omni_limit.lua");
    my ($batch) = literals("omni_limit_batch.lua");
    exit 1 if $bad;

    print "/*\n",
        " * omni_limit_lua.h: omni_limit.lua and omni_limit_batch.lua as C\n",
        " * string literals, made by gen_limit_lua.sh. Edit the .lua files\n",
        " * and run the script, never this file: the unit tests compare\n",
        " * them byte for byte.\n",
        " */\n\n\n",
        "#ifndef OMNI_LIMIT_LUA_H_INCLUDED_\n",
        "#define OMNI_LIMIT_LUA_H_INCLUDED_\n\n\n";
    define("OMNI_LIMIT_LUA", @$one);
    define("OMNI_LIMIT_BATCH_LUA", @$batch);
    print "#endif /* OMNI_LIMIT_LUA_H_INCLUDED_ */\n";
' > "$tmp"

chmod 644 "$tmp"
mv "$tmp" omni_limit_lua.h
trap - EXIT
