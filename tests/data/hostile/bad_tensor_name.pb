
.
xPlaceholder*
dtype0*
shape:

callgx<
:

g
x
y
iIdentityx*
T0"

yi:abc