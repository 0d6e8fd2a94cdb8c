#!/usr/bin/env bash
# Regenerates omni_limit_lua.h from omni_limit.lua, byte for byte: run it
# by hand after editing the script (make unit fails while the two differ).
# Refuses tabs, non-ASCII bytes and lines too long for 80 columns once
# escaped, leaving the header as it was.
set -eu
cd "$(dirname "$0")"

tmp=$(mktemp omni_limit_lua.h.XXXXXX)
trap 'rm -f "$tmp"' EXIT

LC_ALL=C perl -e '
    my ($src) = @ARGV;
    open(my $in, "<", $src) or die "$src: $!\n";
    binmode($in);
    my $bad = 0;
    my @out;
    while (my $line = <$in>) {
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
        push @out, $lit;
    }
    exit 1 if $bad;
    die "$src: empty\n" unless @out;

    print "/*\n",
        " * omni_limit_lua.h: omni_limit.lua as a C string literal, made by\n",
        " * gen_limit_lua.sh. Edit the .lua and run the script, never this\n",
        " * file: the unit tests compare the two byte for byte.\n",
        " */\n\n\n",
        "#ifndef OMNI_LIMIT_LUA_H_INCLUDED_\n",
        "#define OMNI_LIMIT_LUA_H_INCLUDED_\n\n\n";
    my $def = "#define OMNI_LIMIT_LUA";
    for my $lit ($def, @out[0 .. $#out - 1]) {
        printf "%-78s\\\n", $lit;
    }
    print $out[-1], "\n\n\n#endif /* OMNI_LIMIT_LUA_H_INCLUDED_ */\n";
' omni_limit.lua > "$tmp"

chmod 644 "$tmp"
mv "$tmp" omni_limit_lua.h
trap - EXIT
