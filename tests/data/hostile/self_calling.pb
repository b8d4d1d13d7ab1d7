
.
xPlaceholder*
dtype0*
shape:

callfx,
*

f
x
y	
cfx"

yc:y:0