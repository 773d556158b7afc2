# Sum callgrind_annotate's exclusive Ir by the source file of the code
# (inlined code counts in its own file), per packet (n); sha2 (the hashing
# thread) is left out. Used by benches/analyze_cost.sh.
/file:function/ { go = 1; next }
go && match($0, /^ *[0-9,]+ +\( *[0-9.]+%\) +/) {
  ir = substr($0, 1, RLENGTH); sub(/\(.*/, "", ir); gsub(/[ ,]/, "", ir)
  rest = substr($0, RLENGTH + 1)
  file = rest; sub(/:.*/, "", file)
  fn = rest; sub(/^[^:]*:/, "", fn)
  if (fn ~ /^sha2::/) next
  if (file ~ /registry/) { sub(/.*index\.crates\.io-[0-9a-f]*\//, "", file); sub(/\/.*/, "", file); file = "crate:" file }
  else if (file ~ /rustc|library/) file = "std/core(inlined)"
  else if (index(file, "src/") > 0) file = substr(file, index(file, "src/"))
  else file = "libc:" file
  s[file] += ir; t += ir
}
END { for (k in s) printf "%8.1f  %s\n", s[k] / n, k; printf "%8.1f  TOTAL\n", t / n }
